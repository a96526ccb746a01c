//! JSON Schemas that say exactly what the services' validation accepts.
//!
//! An OpenAPI document is a promise to clients: a request it calls valid is
//! accepted, one it calls invalid is refused. Schemathesis holds each service
//! to both halves (`positive_data_acceptance`, `negative_data_rejection`), so
//! a rule that lives only in the code (a text must not be blank, a code must
//! be assigned) breaks the promise, and a client generated from the document
//! fails at run time. These builders turn the validation's own rules and
//! constants into schemas, for `#[schema(schema_with = ...)]` and
//! `#[param(schema_with = ...)]`, so the document and the code cannot drift.
//!
//! The patterns are ECMA-262 as JSON Schema asks, written with plain `\uXXXX`
//! classes that Python's and Rust's regex engines read the same way (no
//! `\s`: each engine has its own idea of white space).

use utoipa::openapi::schema::{AllOfBuilder, Object, ObjectBuilder, Schema, SchemaType, Type};

/// Unicode `White_Space`, what `str::trim` removes (a class's contents).
const WHITE_SPACE: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// The control characters, `char::is_control` (category Cc; a class's contents).
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";

/// The core of a trimmed text of 1 to `max` characters without control
/// characters, optionally surrounded by white space (which trimming drops).
fn trimmed(max: usize) -> String {
    let visible = format!("[^{CONTROL}{WHITE_SPACE}]");
    let inner = format!("[^{CONTROL}]");
    match max {
        0 => String::new(),
        1 => visible,
        _ => format!("{visible}(?:{inner}{{0,{}}}{visible})?", max - 2),
    }
}

/// A string that, trimmed of white space, is 1 to `max` characters without
/// control characters (white space around it is allowed and dropped).
pub fn trimmed_text(max: usize, description: &str) -> Object {
    string(
        format!("^[{WHITE_SPACE}]*{}[{WHITE_SPACE}]*$", trimmed(max)),
        description,
    )
    .build()
}

/// Like [`trimmed_text`], but blank (empty or only white space) and `null`
/// are accepted too, and mean "none".
pub fn optional_trimmed_text(max: usize, description: &str) -> Object {
    string(
        format!("^[{WHITE_SPACE}]*(?:{}[{WHITE_SPACE}]*)?$", trimmed(max)),
        description,
    )
    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    .build()
}

/// A plausible e-mail address as the services check it: trimmed, one `@`
/// between a non-empty name and domain, no white space or control
/// characters, at most `max` characters. Two patterns, both of which must
/// match (no single regular expression bounds the sum of two parts).
pub fn email(max: usize, description: &str) -> Schema {
    let part = format!("[^@{CONTROL}{WHITE_SPACE}]+");
    let shape = string(
        format!("^[{WHITE_SPACE}]*{part}@{part}[{WHITE_SPACE}]*$"),
        description,
    );
    let length = string(
        format!("^[{WHITE_SPACE}]*{}[{WHITE_SPACE}]*$", trimmed(max)),
        &format!("at most {max} characters after trimming"),
    );
    AllOfBuilder::new()
        .item(shape.build())
        .item(length.build())
        .description(Some(description))
        .build()
        .into()
}

/// A string that is one of `values`.
pub fn one_of<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

/// A string of 1 to `max` characters from `alphabet` (a class's contents).
pub fn token(alphabet: &str, max: usize, description: &str) -> Object {
    string(format!("^[{alphabet}]{{1,{max}}}$"), description).build()
}

/// A text of at most `max` characters without control characters, or
/// empty: how the lists read a key to narrow them to (a customer, a SKU).
pub fn key_or_empty(max: usize, description: &str) -> Object {
    string(format!("^[^{CONTROL}]{{0,{max}}}$"), description).build()
}

/// Hex digits in pairs, or empty: the form of an opaque cursor of a list
/// ordered by text keys (`pagination::TextCursor`).
pub fn hex_or_empty(description: &str) -> Object {
    string("^(?:[0-9A-Fa-f]{2})*$".to_owned(), description).build()
}

/// A UUID in its hyphenated form (`01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d`,
/// either case), or empty: how the optional id and cursor query values of
/// the lists are read (empty means "not given").
pub fn uuid_or_empty(description: &str) -> Object {
    const HEX: &str = "[0-9A-Fa-f]";
    string(
        format!("^(?:{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}})?$"),
        description,
    )
    .build()
}

fn string(pattern: String, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Whether `value` is valid against `schema`, as a JSON Schema validator says.
    fn valid(schema: impl serde::Serialize, value: Value) -> bool {
        let schema = serde_json::to_value(schema).unwrap();
        jsonschema::validator_for(&schema).unwrap().is_valid(&value)
    }

    #[test]
    fn trimmed_text_is_what_trimming_and_the_length_and_control_rules_accept() {
        let text = trimmed_text(5, "a text");
        for ok in [
            "a",
            "abcde",
            " abcde\t\n",
            "a b",
            "\u{3000}héllo\u{a0}",
            "日本語",
        ] {
            assert!(valid(&text, json!(ok)), "{ok:?}");
        }
        for bad in [
            "", "   ", "\t\n", "abcdef", "a\u{0}b", "a\tb", "\u{85}", "a\u{9f}",
        ] {
            assert!(!valid(&text, json!(bad)), "{bad:?}");
        }
        let one = trimmed_text(1, "one character");
        assert!(valid(&one, json!(" x ")));
        assert!(!valid(&one, json!("xy")));
    }

    #[test]
    fn optional_text_also_takes_blank_and_null() {
        let reason = optional_trimmed_text(3, "a reason");
        for ok in [
            json!(null),
            json!(""),
            json!("  "),
            json!("abc"),
            json!(" ab "),
        ] {
            assert!(valid(&reason, ok.clone()), "{ok}");
        }
        for bad in [json!("abcd"), json!("a\u{1}"), json!(5)] {
            assert!(!valid(&reason, bad.clone()), "{bad}");
        }
    }

    #[test]
    fn an_email_is_one_at_between_two_parts_and_bounded_in_length() {
        let email = email(10, "an address");
        for ok in ["a@b", " ada@ex.io ", "é@ü"] {
            assert!(valid(&email, json!(ok)), "{ok:?}");
        }
        for bad in [
            "",
            "ab",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "a@b\u{0}",
            "abcdef@ghij",
        ] {
            assert!(!valid(&email, json!(bad)), "{bad:?}");
        }
    }

    #[test]
    fn ids_in_queries_are_hyphenated_uuids_or_empty() {
        let id = uuid_or_empty("an id");
        for ok in [
            "",
            "01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d",
            "01933B5E-8F30-7A1B-8C2D-3E4F5A6B7C8D",
        ] {
            assert!(valid(&id, json!(ok)), "{ok:?}");
        }
        for bad in [
            "Ï",
            "__main__",
            "01933b5e8f307a1b8c2d3e4f5a6b7c8d",
            "01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8",
        ] {
            assert!(!valid(&id, json!(bad)), "{bad:?}");
        }
    }
}
