//! Keyset pagination: `?limit=&cursor=` in, `{ "items", "next_cursor" }` out.
//!
//! Ids are UUIDv7, so "newest first" is "id descending" and the cursor is the
//! last id of the previous page. Keyset pages stay correct while rows are
//! being inserted, unlike offsets. The query values' schemas
//! ([`cursor_schema`], [`order_id_schema`]) say exactly what is read: a
//! hyphenated UUID, or empty for "not given".

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use crate::problem::{FieldError, Problem};

/// Page size when the client does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 500;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items to return.
    pub limit: i64,
    /// Return items with ids below this one (exclusive); `None` for the first page.
    pub before: Option<Uuid>,
}

impl PageRequest {
    /// Validates the raw `limit` and `cursor` query values.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ));
                    DEFAULT_LIMIT
                }
            },
        };
        let before = match cursor {
            None | Some("") => None,
            Some(raw) => match hyphenated_uuid(raw) {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "must be a `next_cursor` value from a previous page",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, before })
        } else {
            Err(Problem::bad_request(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

/// The schema of `cursor`: what [`PageRequest::parse`] reads.
pub fn cursor_schema() -> Object {
    crate::schema::uuid_or_empty(
        "`next_cursor` of the previous page (a UUID, hyphenated); empty: the first page.",
    )
}

/// The schema of `cursor` in a list ordered by text keys: the form of
/// [`TextCursor::encode`]. Only a value a previous page handed out is
/// valid, which no schema can say (the cursor is opaque).
pub fn text_cursor_schema() -> Object {
    crate::schema::hex_or_empty(
        "`next_cursor` of the previous page, as it was handed out (opaque); empty: the first page.",
    )
}

/// The schema of `order_id` in a list's query: what the lists read.
pub fn order_id_schema() -> Object {
    crate::schema::uuid_or_empty(
        "Only items of this order (a UUID, hyphenated); empty: every order.",
    )
}

/// The query of a list that can be narrowed to one order:
/// `?order_id=&limit=&cursor=`, every part optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Only items of this order (a UUID; empty: every order).
    #[param(required = false, schema_with = order_id_schema)]
    pub order_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(required = false, schema_with = cursor_schema)]
    pub cursor: Option<String>,
}

impl OrderListQuery {
    /// Validates the order id and the page; a bad value is a 400 naming it.
    pub fn parse(&self) -> Result<(Option<Uuid>, PageRequest), Problem> {
        let order_id = parse_order_id(self.order_id.as_deref())?;
        let page = PageRequest::parse(self.limit.as_deref(), self.cursor.as_deref())?;
        Ok((order_id, page))
    }
}

/// `?order_id=&limit=`, both optional: the newest items, one page only.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NewestQuery {
    /// Only items of this order (a UUID; empty: every order).
    #[param(required = false, schema_with = order_id_schema)]
    pub order_id: Option<String>,
    /// How many, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl NewestQuery {
    /// Validates the order id and the limit; a bad value is a 400 naming it.
    pub fn parse(&self) -> Result<(Option<Uuid>, i64), Problem> {
        let order_id = parse_order_id(self.order_id.as_deref())?;
        let page = PageRequest::parse(self.limit.as_deref(), None)?;
        Ok((order_id, page.limit))
    }
}

/// An optional `order_id` query value: empty is none, anything but a UUID a 400.
fn parse_order_id(raw: Option<&str>) -> Result<Option<Uuid>, Problem> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => hyphenated_uuid(raw).map(Some).ok_or_else(|| {
            Problem::bad_request(
                "order_id: must be a UUID such as 01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d",
            )
        }),
    }
}

/// The keys of the last row of a page of a list ordered by text (a customer
/// and a currency, a SKU), as the opaque `next_cursor` of that page: the
/// keys joined by NUL (which no PostgreSQL text holds) and hex-encoded, so
/// that any text survives a query string unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCursor(pub Vec<String>);

impl TextCursor {
    /// The cursor as it goes into `next_cursor`.
    pub fn encode(&self) -> String {
        hex::encode(self.0.join("\0"))
    }

    /// Reads a `cursor` query value of `parts` keys; empty is the first page,
    /// anything a previous page did not hand out is a 400.
    pub fn parse(raw: Option<&str>, parts: usize) -> Result<Option<Self>, Problem> {
        let raw = match raw {
            None | Some("") => return Ok(None),
            Some(raw) => raw,
        };
        hex::decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| text.split('\0').map(str::to_owned).collect::<Vec<_>>())
            .filter(|keys| keys.len() == parts)
            .map(|keys| Some(TextCursor(keys)))
            .ok_or_else(|| {
                Problem::bad_request("cursor: must be a `next_cursor` value from a previous page")
            })
    }
}

/// A validated request for a page of a list ordered by text keys: `limit`
/// as in [`PageRequest`], `cursor` a [`TextCursor`] of the list's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPageRequest {
    /// How many items to return.
    pub limit: i64,
    /// Return items with keys after these (exclusive); `None` for the first page.
    pub after: Option<TextCursor>,
}

impl KeyedPageRequest {
    /// Validates the raw `limit` and `cursor` (of `parts` keys) query values.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, parts: usize) -> Result<Self, Problem> {
        Ok(KeyedPageRequest {
            limit: PageRequest::parse(limit, None)?.limit,
            after: TextCursor::parse(cursor, parts)?,
        })
    }

    /// Whether this is the first page.
    pub fn first_page(&self) -> bool {
        self.after.is_none()
    }
}

/// An optional text query value that must equal a stored key: empty is none;
/// longer than `max` characters, or holding a control character (which
/// no key holds, and a NUL no query may carry to PostgreSQL), is a 400
/// naming `field`.
pub fn text_key(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>, Problem> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) if raw.chars().count() > max => Err(Problem::bad_request(format!(
            "{field}: must be at most {max} characters"
        ))),
        Some(raw) if raw.chars().any(char::is_control) => Err(Problem::bad_request(format!(
            "{field}: must not contain control characters"
        ))),
        Some(raw) => Ok(Some(raw.to_owned())),
    }
}

/// A UUID in the hyphenated form the answers use (and the document
/// states), not the braced, URN or bare-hex forms `Uuid::parse_str` also takes.
fn hyphenated_uuid(raw: &str) -> Option<Uuid> {
    (raw.len() == 36).then(|| raw.parse().ok()).flatten()
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `request.limit + 1` rows fetched in key
    /// order; the cursor holds the last row's keys (`keys`).
    pub fn from_keyed_rows(
        rows: Vec<T>,
        request: &KeyedPageRequest,
        keys: impl Fn(&T) -> TextCursor,
    ) -> Self {
        Self::of(rows, request.limit, |last| keys(last).encode())
    }

    /// Builds a page from up to `request.fetch_limit()` rows fetched newest first.
    pub fn from_rows(rows: Vec<T>, request: PageRequest, id: impl Fn(&T) -> Uuid) -> Self {
        Self::of(rows, request.limit, |last| id(last).to_string())
    }

    /// The first `limit` of `rows` (fetched one beyond the page, so that a
    /// surplus row tells that a next page exists), with the cursor of the
    /// last one kept when there is a next page.
    fn of(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some("500"), None).unwrap().limit, 500);
        for bad in ["0", "501", "-1", "ten", ""] {
            assert!(PageRequest::parse(Some(bad), None).is_err(), "{bad}");
        }
        assert!(PageRequest::parse(None, Some("nope")).is_err());
    }

    #[test]
    fn order_list_query_checks_the_order_id_and_the_page() {
        let query = |order_id: &str, limit: &str| OrderListQuery {
            order_id: Some(order_id.to_owned()),
            limit: Some(limit.to_owned()),
            cursor: None,
        };
        let id = Uuid::now_v7();
        let (order_id, page) = query(&id.to_string(), "5").parse().unwrap();
        assert_eq!((order_id, page.limit), (Some(id), 5));
        assert_eq!(query("", "5").parse().unwrap().0, None);
        assert!(query("42", "5").parse().is_err());
        assert!(query(&id.simple().to_string(), "5").parse().is_err());
        assert!(query(&id.urn().to_string(), "5").parse().is_err());
        assert!(query(&id.to_string(), "0").parse().is_err());
    }

    #[test]
    fn text_cursors_round_trip_any_text_and_refuse_what_no_page_handed_out() {
        let keys = TextCursor(vec!["a&b=c d@example.com".into(), "EUR".into()]);
        let raw = keys.encode();
        assert!(raw.bytes().all(|b| b.is_ascii_hexdigit()), "{raw}");
        assert_eq!(TextCursor::parse(Some(&raw), 2).unwrap(), Some(keys));
        assert_eq!(TextCursor::parse(Some(""), 2).unwrap(), None);
        assert_eq!(TextCursor::parse(None, 1).unwrap(), None);
        for bad in ["zz", "abc", &hex::encode("one key")] {
            assert!(TextCursor::parse(Some(bad), 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_keys_are_bounded_and_free_of_control_characters() {
        assert_eq!(text_key("sku", Some(""), 5).unwrap(), None);
        assert_eq!(
            text_key("sku", Some("BK-1"), 5).unwrap(),
            Some("BK-1".into())
        );
        assert!(text_key("sku", Some("BK-0001"), 5).is_err());
        assert!(text_key("sku", Some("B\0K"), 5).is_err());
    }

    #[test]
    fn next_cursor_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let req = PageRequest {
            limit: 2,
            before: None,
        };
        let page = Page::from_rows(ids.clone(), req, |id| *id);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));
        let last = Page::from_rows(ids[..2].to_vec(), req, |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
