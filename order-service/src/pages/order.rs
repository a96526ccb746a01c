//! `GET /order/{id}`: one order, its journey through the flow (live), and
//! a cancel button with a reason; `POST /order/{id}/cancel`, which cancels
//! through [`AppState::cancel`] as `POST /orders/{id}/cancel` does; and
//! `GET /order/{id}/journey`, the journey fragment `live.js` refreshes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use platform_web::web::form::Form;
use platform_web::web::format::{money, time};
use platform_web::web::layout::{Section, page, status};
use platform_web::web::{PageError, path_id};
use serde::Deserialize;
use shared_events::TraceParent;

use super::journey::Journey;
use super::{Pages, store_error};
use crate::api::request::CancelRequest;
use crate::domain::OrderStatus;
use crate::store::{Cancelled, OrderRecord};

/// The query of `GET /order/{id}`.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    /// Set when the form that placed it was sent again.
    pub resent: Option<String>,
}

async fn find(pages: &Pages, raw_id: &str) -> Result<OrderRecord, PageError> {
    let id = path_id(raw_id, "order")?;
    pages
        .app
        .store
        .find_order(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| PageError::not_found(format!("there is no order {id}")))
}

/// `GET /order/{id}`.
#[tracing::instrument(name = "order_page", skip_all)]
pub async fn show(
    State(pages): State<Pages>,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = platform_web::web::query(query)?;
    let order = find(&pages, &id).await?;
    let notice = query.resent.is_some().then(|| {
        html! { "This form had been sent already: this is the order it placed. Nothing was placed twice." }
    });
    render(&pages, &order, notice, None, StatusCode::OK).await
}

/// `POST /order/{id}/cancel` with an optional `reason`.
#[tracing::instrument(name = "cancel_form", skip_all)]
pub async fn cancel(
    State(pages): State<Pages>,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    let id = path_id(&id, "order")?;
    form.only(|name| name == "reason")?;
    let request = CancelRequest {
        reason: form.get("reason").map(str::to_owned),
    };
    let reason = match request.validate() {
        Ok(reason) => reason,
        Err(errors) => {
            let order = find(&pages, &id.to_string()).await?;
            let message = errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return render(
                &pages,
                &order,
                None,
                Some((request.reason.unwrap_or_default(), message)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match pages
        .app
        .cancel(id, reason.as_ref(), TraceParent::new_root())
        .await
        .map_err(store_error)?
    {
        Cancelled::Now(order) | Cancelled::Already(order) => {
            Ok(Redirect::to(&format!("/order/{}", order.id)).into_response())
        }
        Cancelled::NotFound => Err(PageError::not_found(format!("there is no order {id}"))),
    }
}

/// `GET /order/{id}/journey`: the journey fragment.
pub async fn journey(
    State(pages): State<Pages>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let order = find(&pages, &id).await?;
    let journey = Journey::compose(&pages.app.store, &pages.upstream, &order)
        .await
        .map_err(store_error)?;
    Ok(Html(journey.render(&pages.links).into_string()).into_response())
}

/// The order page; `rejected` is a cancel reason refused, with why.
async fn render(
    pages: &Pages,
    order: &OrderRecord,
    notice: Option<Markup>,
    rejected: Option<(String, String)>,
    status_code: StatusCode,
) -> Result<Response, PageError> {
    let journey = Journey::compose(&pages.app.store, &pages.upstream, order)
        .await
        .map_err(store_error)?;
    let b = &order.billing;
    let s = &order.shipping;
    let content = html! {
        @if let Some(notice) = notice { div.notice.info #resent { (notice) } }
        div.actions {
            h1 { "Order for " span.customer { (order.customer_name) } }
            (status(order.status.as_str()))
        }
        p.muted.mono { (order.id) }
        div.card {
            h2 { "Journey" }
            (journey.render(&pages.links))
        }
        div.cards {
            div.card {
                dl.facts {
                    dt { "Placed" } dd { (time(order.placed_at)) }
                    dt { "Customer" } dd.customer { (order.customer_name) }
                    dt { "E-mail" } dd { (order.customer_email) }
                    dt { "Billing" } dd { (b.street) ", " (b.zip) " " (b.city) ", " (b.country) }
                    dt { "Shipping" } dd { (s.street) ", " (s.zip) " " (s.city) ", " (s.country) }
                    dt { "Total" } dd { strong { (money(order.total_cents, &order.currency)) } }
                    @if let Some(at) = order.cancelled_at {
                        dt { "Cancelled" } dd { (time(at)) }
                        dt { "Reason" } dd { (order.cancel_reason.as_deref().unwrap_or("none given")) }
                    }
                }
            }
        }
        h2 { "Lines" }
        table {
            thead { tr { th { "SKU" } th { "Product" } th.num { "Quantity" } th.num { "Unit price" } th.num { "Line total" } } }
            tbody {
                @for line in &order.lines {
                    tr {
                        td.mono { (line.sku) } td { (line.name) } td.num { (line.quantity) }
                        td.num { (money(line.unit_price_cents, &order.currency)) }
                        td.num { (money(line.line_total_cents, &order.currency)) }
                    }
                }
            }
        }
        @if order.status == OrderStatus::Placed {
            h2 { "Cancel this order" }
            form.card method="post" action={ "/order/" (order.id) "/cancel" } {
                label.field {
                    "Reason (optional, at most 500 characters)"
                    @let (typed, error) = match &rejected { Some((t, e)) => (t.as_str(), Some(e)), None => ("", None) };
                    input type="text" name="reason" value=(typed) class=[error.map(|_| "invalid")];
                    @if let Some(error) = error { span.field-error data-error-for="reason" { (error) } }
                }
                div.actions { button.danger #cancel type="submit" { "Cancel order" } }
            }
        }
        p { a href="/" { "« All orders" } }
    };
    let markup = page(
        &format!("Order for {}", order.customer_name),
        &pages.links,
        Section::Orders,
        content,
    );
    Ok((status_code, Html(markup.into_string())).into_response())
}
