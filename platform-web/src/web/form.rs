//! Reading a form post strictly: `application/x-www-form-urlencoded`, UTF-8,
//! bounded in size, every field at most once; anything else is a 4xx page
//! that says what is wrong, before a handler sees it.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use super::PageError;

/// The media type of a form post.
pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// Largest form body accepted: 128 KiB (an order of 100 lines with long
/// names fits; the JSON API takes 64 KiB, which URL-encoding roughly doubles).
pub const MAX_FORM_BYTES: usize = 128 * 1024;

/// The fields of a form post, in the order sent, each name at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: HashMap<String, String>,
}

impl Form {
    /// Decodes a URL-encoded body; a bad escape, text that is not UTF-8 or a
    /// field sent twice is an error naming it.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut fields = HashMap::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if fields.contains_key(&name) {
                return Err(format!("the form field {name:?} was sent twice"));
            }
            fields.insert(name, value);
        }
        Ok(Form { fields })
    }

    /// The value of `name`, if it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Every field name sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Refuses the form if it holds a field `known` does not accept.
    pub fn only(&self, known: impl Fn(&str) -> bool) -> Result<(), PageError> {
        let mut unknown: Vec<&str> = self.names().filter(|n| !known(n)).collect();
        unknown.sort_unstable();
        match unknown.first() {
            None => Ok(()),
            Some(name) => Err(PageError::bad_request(format!(
                "this form has no field {:?}",
                name.chars().take(60).collect::<String>()
            ))),
        }
    }
}

/// Percent-decodes one name or value (`+` is a space).
fn decode(raw: &[u8]) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("the form body has a % that is not followed by two hex digits")?;
                bytes.push(hex);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| "the form body is not UTF-8".to_owned())
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut parts = content_type.split(';');
        let essence = parts.next().unwrap_or("").trim();
        let utf8 = parts.all(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            !name.trim().eq_ignore_ascii_case("charset")
                || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        });
        if !essence.eq_ignore_ascii_case(FORM_MEDIA_TYPE) || !utf8 {
            return Err(PageError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "a form must be sent as {FORM_MEDIA_TYPE} in UTF-8; got {:?}",
                    content_type.chars().take(80).collect::<String>()
                ),
            ));
        }
        let body = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the form is larger than {} KiB", MAX_FORM_BYTES / 1024),
                )
            } else {
                PageError::bad_request(format!("the form could not be read: {}", e.body_text()))
            }
        })?;
        Form::parse(&body).map_err(PageError::bad_request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded_strictly() {
        let form =
            Form::parse(b"customer.name=Ada+Lovelace&lines%5B0%5D.sku=A%2FB&empty=&flag").unwrap();
        assert_eq!(form.get("customer.name"), Some("Ada Lovelace"));
        assert_eq!(form.get("lines[0].sku"), Some("A/B"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.get("missing"), None);
        assert_eq!(
            Form::parse("name=%E2%82%AC".as_bytes())
                .unwrap()
                .get("name"),
            Some("€")
        );
        for bad in [&b"a=%FF"[..], b"a=%4", b"a=%zz", b"a=1&a=2", b"a=\xff"] {
            assert!(Form::parse(bad).is_err(), "{bad:?}");
        }
        assert!(form.only(|n| n != "flag").is_err());
        assert!(form.only(|_| true).is_ok());
    }
}
