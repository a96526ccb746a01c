//! The frame of every page: head (the stylesheet and the one script, both
//! served by the service itself), the navigation between the services'
//! pages (every service of the registry) and the overview, the content, and a footer linking each
//! service's API reference (`/api-docs`).

use maud::{DOCTYPE, Markup, html};

use super::PageLinks;
use super::assets::{SCRIPT, STYLESHEET};
use platform::services;

/// Which part of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// order-service's list and order pages.
    Orders,
    /// order-service's new-order form.
    NewOrder,
    /// A consumer's pages, by its name in the registry ([`platform::services::ALL`]).
    Consumer(&'static str),
    /// The overview with the live charts.
    Overview,
}

/// A complete page: `title`, the navigation with `current` marked, `content`.
///
/// The navigation and the footer list every service of the registry: the
/// orders and the new-order form, each consumer's list, then the overview.
pub fn page(title: &str, links: &PageLinks, current: Section, content: Markup) -> Markup {
    let mut nav = vec![
        (Section::Orders, format!("{}/", links.order), "Orders"),
        (
            Section::NewOrder,
            format!("{}/new", links.order),
            "New order",
        ),
    ];
    nav.extend(services::consumers().map(|service| {
        (
            Section::Consumer(service.name),
            format!("{}/", links.of(service)),
            service.label,
        )
    }));
    nav.push((
        Section::Overview,
        format!("{}/overview", links.order),
        "Overview",
    ));
    document(
        title,
        html! {
            header.top {
                span.brand { "Order flow" }
                nav {
                    @for (section, href, label) in &nav {
                        @if *section == current {
                            a.current href=(href) aria-current="page" { (label) }
                        } @else {
                            a href=(href) { (label) }
                        }
                    }
                }
            }
            main { (content) }
            footer.apis {
                "API reference (OpenAPI): "
                @for (i, service) in services::ALL.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href={ (links.of(service)) "/api-docs" } { (service.name) }
                }
            }
        },
    )
}

/// A page without navigation (error pages, which may not know the links).
pub fn bare(title: &str, content: Markup) -> Markup {
    document(title, html! { main { (content) } })
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Order flow" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(STYLESHEET);
                script src=(SCRIPT) defer {}
            }
            body { (body) }
        }
    }
}

/// A status as a badge (`placed`, `open`, `pending`, `cancelled`...).
pub fn status(name: &str) -> Markup {
    html! { span class={ "status " (name) } { (name) } }
}

/// The links under a list, newest first: to the first page (unless this is
/// it) and to the next one (when there is one), keyed by the list's `next_cursor`.
pub fn pager(next_cursor: Option<&str>, first_page: bool) -> Markup {
    labelled_pager(
        next_cursor,
        first_page,
        ["« Newest", "Older »", "No older entries"],
    )
}

/// The same links under a list in the order of its keys (A to Z).
pub fn key_order_pager(next_cursor: Option<&str>, first_page: bool) -> Markup {
    labelled_pager(
        next_cursor,
        first_page,
        ["« First", "Next »", "No more entries"],
    )
}

/// The pager, with its labels: first page, next page, no next page.
fn labelled_pager(next_cursor: Option<&str>, first_page: bool, labels: [&str; 3]) -> Markup {
    let [first, next, last] = labels;
    html! {
        nav.pager {
            @if !first_page {
                a href="?" { (first) }
            }
            @if let Some(cursor) = next_cursor {
                a href={ "?cursor=" (cursor) } rel="next" { (next) }
            } @else {
                span.muted { (last) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_escaped_and_the_current_section_is_marked() {
        let page = page(
            "<b>x</b>",
            &PageLinks::local(),
            Section::Consumer(services::INVOICING_SERVICE.name),
            html! { p { "hi" } },
        )
        .into_string();
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt; · Order flow"), "{page}");
        assert!(page.contains(r#"<a class="current" href="http://127.0.0.1:8082/" aria-current="page">Invoices</a>"#), "{page}");
        assert!(!page.contains("<script>"), "no inline script: {page}");
        for service in ["8081", "8082", "8083"] {
            let reference = format!(r#"href="http://127.0.0.1:{service}/api-docs""#);
            assert!(
                page.contains(&reference),
                "links each API reference: {page}"
            );
        }
    }
}
