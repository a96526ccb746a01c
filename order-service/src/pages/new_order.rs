//! `GET /new` and `POST /new`: the new-order form ([`super::form`]) and
//! what its buttons do. Placing goes through [`AppState::place`], as
//! `POST /orders` does, under the form's Idempotency-Key; a placed order
//! answers `303 See Other` to its page, so a reload never sends the form again.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use platform_web::FieldError;
use platform_web::web::PageError;
use platform_web::web::form::Form;
use platform_web::web::layout::{Section, page};
use serde::Deserialize;
use shared_events::TraceParent;
use uuid::Uuid;

use super::form::{ACTION, Action, KEY_FIELD, OrderForm, SAME_AS_BILLING, UNIT_PRICE};
use super::{Pages, store_error};
use crate::api::headers::IdempotencyKey;
use crate::domain::MAX_LINES;
use crate::store::Placed;

/// The query of `GET /new`.
#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    /// The form's Idempotency-Key; chosen on the first visit.
    pub key: Option<String>,
}

/// `GET /new?key=`: an empty form. Without a key, a fresh one is chosen and
/// the browser sent to `/new?key=...`, so a reload keeps the same key.
pub async fn blank(
    State(pages): State<Pages>,
    query: Result<Query<NewQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = platform_web::web::query(query)?;
    let Some(key) = query.key else {
        return Ok(Redirect::to(&format!("/new?key={}", Uuid::new_v4())).into_response());
    };
    let key = IdempotencyKey::parse(key.as_bytes()).map_err(|_| {
        PageError::bad_request(format!(
            "the form's key must be 1 to {} visible ASCII characters; open /new for a fresh form",
            IdempotencyKey::MAX_LEN
        ))
    })?;
    Ok(render(
        &pages,
        &OrderForm::blank(key),
        &[],
        None,
        StatusCode::OK,
    ))
}

/// `POST /new`: adds or removes a line, or validates and places the order.
#[tracing::instrument(name = "order_form", skip_all)]
pub async fn submit(State(pages): State<Pages>, form: Form) -> Result<Response, PageError> {
    let (mut form, action) = OrderForm::read(&form)?;
    if action != Action::Place {
        form.apply(action);
        return Ok(render(&pages, &form, &[], None, StatusCode::OK));
    }
    let order = match form.validate() {
        Ok(order) => order,
        Err(errors) => {
            return Ok(render(
                &pages,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let key = IdempotencyKey::parse(form.key.as_bytes())
        .map_err(|_| PageError::bad_request("the form's idempotency key is not valid"))?;
    match pages
        .app
        .place(&order, Some(&key), TraceParent::new_root())
        .await
        .map_err(store_error)?
    {
        Placed::Created(order) => Ok(Redirect::to(&format!("/order/{}", order.id)).into_response()),
        Placed::Replayed(order) => {
            Ok(Redirect::to(&format!("/order/{}?resent=1", order.id)).into_response())
        }
        Placed::KeyReused => Ok(render(
            &pages,
            &form,
            &[],
            Some(html! {
                "This form already placed an order with other details, so it was not sent again. "
                a href="/new" { "Start a new order" } " to place another."
            }),
            StatusCode::CONFLICT,
        )),
    }
}

/// The form page with `errors` beside their fields and an optional notice.
fn render(
    pages: &Pages,
    form: &OrderForm,
    errors: &[FieldError],
    notice: Option<Markup>,
    status: StatusCode,
) -> Response {
    let mut by_field: HashMap<&str, Vec<&str>> = HashMap::new();
    for error in errors {
        by_field
            .entry(error.field.as_str())
            .or_default()
            .push(error.message.as_str());
    }
    let input = |name: &str, label: &str, kind: &str| -> Markup {
        let messages = by_field.get(name);
        html! {
            label.field {
                (label)
                input type=(kind) name=(name) value=(form.value(name))
                    class=[messages.map(|_| "invalid")]
                    aria-invalid=[messages.map(|_| "true")];
                @for message in messages.into_iter().flatten() {
                    span.field-error data-error-for=(name) { (message) }
                }
            }
        }
    };
    let address = |prefix: &str| -> Markup {
        html! {
            div.fields {
                (input(&format!("{prefix}.street"), "Street and number", "text"))
                (input(&format!("{prefix}.zip"), "Postal code", "text"))
                (input(&format!("{prefix}.city"), "City", "text"))
                (input(&format!("{prefix}.country"), "Country (ISO code, e.g. DE)", "text"))
            }
        }
    };
    let content = html! {
        h1 { "New order" }
        @if let Some(notice) = notice { div.notice.error { (notice) } }
        @if !errors.is_empty() {
            div.notice.error #form-errors {
                "The order was not placed: " (errors.len()) " field(s) need attention. Nothing was written."
            }
        }
        form.order method="post" action="/new" novalidate {
            input type="hidden" name=(KEY_FIELD) value=(form.key);
            // Enter in a field presses the first submit button: let it be "place".
            button.default-submit type="submit" name=(ACTION) value="place" tabindex="-1" aria-hidden="true" { "Place order" }
            fieldset {
                legend { "Customer" }
                div.fields {
                    (input("customer.name", "Name", "text"))
                    (input("customer.email", "E-mail", "email"))
                    (input("currency", "Currency (e.g. EUR)", "text"))
                }
                @for message in by_field.get("customer").into_iter().flatten() {
                    span.field-error data-error-for="customer" { (message) }
                }
            }
            fieldset {
                legend { "Billing address" }
                (address("billing_address"))
            }
            fieldset {
                legend { "Shipping address" }
                input #same-as-billing type="checkbox" name=(SAME_AS_BILLING) value="on"
                    checked[form.same_as_billing];
                label.same-as-billing for="same-as-billing" { "Same as the billing address" }
                div.shipping-fields { (address("shipping_address")) }
            }
            fieldset {
                legend { "Lines" }
                @for message in by_field.get("lines").into_iter().flatten() {
                    p.field-error data-error-for="lines" { (message) }
                }
                table.lines {
                    tbody {
                        @for i in 0..form.lines.len() {
                            tr {
                                td { (input(&format!("lines[{i}].sku"), "SKU", "text")) }
                                td { (input(&format!("lines[{i}].name"), "Product", "text")) }
                                td { (input(&format!("lines[{i}].quantity"), "Quantity", "text")) }
                                td { (input(&format!("lines[{i}].{UNIT_PRICE}"), "Unit price (e.g. 19.99)", "text")) }
                                td {
                                    @if form.lines.len() > 1 {
                                        button.small type="submit" name=(ACTION) value={ "remove-line-" (i) }
                                            formnovalidate title="Remove this line" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if form.lines.len() < MAX_LINES {
                    button type="submit" name=(ACTION) value="add-line" formnovalidate { "Add a line" }
                }
            }
            div.actions {
                button.primary #place type="submit" name=(ACTION) value="place" { "Place order" }
                span.muted { "Sent twice, this form still places one order." }
            }
        }
    };
    let markup = page("New order", &pages.links, Section::NewOrder, content);
    (status, Html(markup.into_string())).into_response()
}
