//! The request fields' JSON Schemas, built from the domain's own rules.
//!
//! Each function is one field's schema in the OpenAPI document
//! (`#[schema(schema_with = ...)]` in [`super::request`]), made by
//! [`platform_web::schema`] from the constants the validation uses, so the
//! document says exactly what [`super::validate`] accepts. One rule has no
//! JSON Schema: a SKU may appear on one line only (JSON Schema can ask for
//! unique items, not for items unique by one property); the document says
//! so in words on `lines`.

use platform_web::schema;
use utoipa::openapi::schema::{Object, Schema};

use crate::domain::{
    CancelReason, City, Email, PersonName, ProductName, Sku, Street, Zip, country,
};

/// `customer.name`.
pub fn person_name() -> Object {
    schema::trimmed_text(
        PersonName::MAX_CHARS,
        "Full name: 1 to 200 characters after trimming, no control characters.",
    )
}

/// `customer.email`.
pub fn email() -> Schema {
    schema::email(
        Email::MAX_LEN,
        "E-mail address: one @ between a non-empty name and domain, no white space \
         or control characters, at most 254 characters after trimming.",
    )
}

/// `*.street`.
pub fn street() -> Object {
    schema::trimmed_text(
        Street::MAX_CHARS,
        "Street and number: 1 to 200 characters after trimming, no control characters.",
    )
}

/// `*.zip`.
pub fn zip() -> Object {
    schema::trimmed_text(
        Zip::MAX_CHARS,
        "Postal code: 1 to 20 characters after trimming, no control characters.",
    )
}

/// `*.city`.
pub fn city() -> Object {
    schema::trimmed_text(
        City::MAX_CHARS,
        "City: 1 to 100 characters after trimming, no control characters.",
    )
}

/// `*.country`.
pub fn country() -> Object {
    schema::one_of(
        country::ASSIGNED.iter().copied(),
        "An assigned ISO 3166-1 alpha-2 code, upper case (user-assigned codes such as XK are refused).",
    )
}

/// `currency`.
pub fn currency() -> Object {
    schema::one_of(
        platform::money::accepted_codes(),
        "An ISO 4217 code in use that has a minor unit, upper case; every amount \
         is in its minor unit (cents for EUR, yen for JPY).",
    )
}

/// `lines[].sku`.
pub fn sku() -> Object {
    schema::token(
        r"A-Za-z0-9._\-",
        Sku::MAX_LEN,
        "Stock keeping unit: 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', taken as \
         given; unique within the order.",
    )
}

/// `lines[].name`.
pub fn product_name() -> Object {
    schema::trimmed_text(
        ProductName::MAX_CHARS,
        "Product name: 1 to 200 characters after trimming, no control characters.",
    )
}

/// `reason` of a cancellation.
pub fn cancel_reason() -> Object {
    schema::optional_trimmed_text(
        CancelReason::MAX_CHARS,
        "Why the order is cancelled: at most 500 characters after trimming, no \
         control characters; blank or null: no reason.",
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::Text;

    fn validator(schema: impl serde::Serialize) -> jsonschema::Validator {
        jsonschema::validator_for(&serde_json::to_value(schema).unwrap()).unwrap()
    }

    /// Text made of the characters the rules care about: letters, white
    /// space inside and outside the control range, controls, and others.
    fn tricky_text() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            4 => prop::char::range('a', 'z'),
            2 => prop::sample::select(vec![' ', '\t', '\n', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}']),
            1 => prop::sample::select(vec!['\u{0}', '\u{1f}', '\u{7f}', '\u{9f}', '\u{feff}', '@']),
            1 => any::<char>(),
        ];
        prop::collection::vec(char, 0..8).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn the_text_schema_accepts_exactly_what_validation_accepts(text in tricky_text()) {
            let schema = validator(schema::trimmed_text(5, "text"));
            prop_assert_eq!(schema.is_valid(&json!(text)), Text::<5>::parse(&text).is_ok());
        }

        #[test]
        fn the_cancel_reason_schema_accepts_exactly_what_validation_accepts(text in tricky_text()) {
            let schema = validator(schema::optional_trimmed_text(5, "reason"));
            let accepted = text.trim().is_empty() || Text::<5>::parse(&text).is_ok();
            prop_assert_eq!(schema.is_valid(&json!(text)), accepted);
        }

        #[test]
        fn the_email_schema_accepts_exactly_what_validation_accepts(text in tricky_text()) {
            let schema = validator(email());
            prop_assert_eq!(schema.is_valid(&json!(text)), Email::parse(&text).is_ok());
        }

        #[test]
        fn the_sku_schema_accepts_exactly_what_validation_accepts(text in tricky_text()) {
            let schema = validator(sku());
            prop_assert_eq!(schema.is_valid(&json!(text)), Sku::parse(&text).is_ok());
        }
    }

    #[test]
    fn the_code_schemas_list_exactly_the_accepted_codes() {
        let countries = validator(country());
        let currencies = validator(currency());
        for code in ["DE", "JP", "XK", "de", "EU", "ZZ"] {
            assert_eq!(
                countries.is_valid(&json!(code)),
                crate::domain::Country::parse(code).is_ok(),
                "{code}"
            );
        }
        for code in ["EUR", "JPY", "KWD", "XAU", "XXX", "HRK", "eur", "ABC"] {
            assert_eq!(
                currencies.is_valid(&json!(code)),
                crate::domain::Currency::parse(code).is_ok(),
                "{code}"
            );
        }
        assert!(!currencies.is_valid(&Value::Null));
    }

    #[test]
    fn the_longest_texts_are_at_their_limits() {
        let name = validator(person_name());
        assert!(name.is_valid(&json!(format!(" {} ", "n".repeat(200)))));
        assert!(!name.is_valid(&json!("n".repeat(201))));
        let email = validator(email());
        let longest = format!("{}@example.com", "é".repeat(254 - 12));
        assert!(email.is_valid(&json!(longest)));
        assert!(Email::parse(&longest).is_ok());
        assert!(!email.is_valid(&json!(format!("é{longest}"))));
    }
}
