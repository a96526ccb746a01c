//! The body half of the request corpus: JSON that no parser should accept,
//! that is not UTF-8, has the wrong types, numbers out of range, nesting deep
//! enough to overflow a recursive parser, duplicate keys, or too many bytes.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::cancel;
use crate::order_api_client::{Bad, order, with};

/// Deeper than any JSON parser should follow by recursion.
const DEEP: usize = 10_000;

/// `text` with the first `from` replaced by `to`, as bytes; `from` must occur.
fn replacing(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from} is not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// The requests of the corpus whose body is what is wrong; see [`super::requests`].
pub(super) fn body_corpus() -> Vec<Bad> {
    use StatusCode as S;
    let valid = order();
    // Compact JSON: `"quantity":2`, no spaces, so raw edits below can find their place.
    let text = valid.to_string();
    let unknown = Uuid::now_v7();
    let line = |i: usize, quantity: Value, price: Value| json!({ "sku": format!("S{i}"), "name": "n", "quantity": quantity, "unit_price_cents": price });
    let lines = |quantity: Value, price: Value| -> Value {
        (0..100)
            .map(|i| line(i, quantity.clone(), price.clone()))
            .collect()
    };
    let nested_arrays = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(DEEP), "}".repeat(DEEP));
    let ten_megabytes = format!(
        r#"{{"customer":{{"name":"{}"}}}}"#,
        "x".repeat(10 * 1024 * 1024)
    );

    vec![
        // ---- unreadable JSON: 400 ------------------------------------------
        Bad::raw("malformed JSON", "{\"customer\": }", S::BAD_REQUEST),
        Bad::raw(
            "truncated JSON",
            &text.as_bytes()[..text.len() / 2],
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "truncated inside an escape",
            r#"{"customer":{"name":"Ada\u00"#,
            S::BAD_REQUEST,
        ),
        Bad::raw("a lone brace", "{", S::BAD_REQUEST),
        Bad::raw("empty body", "", S::BAD_REQUEST),
        Bad::raw("whitespace only", " \r\n\t ", S::BAD_REQUEST),
        Bad::raw("trailing garbage", format!("{text} x"), S::BAD_REQUEST),
        Bad::raw("two objects", format!("{text}{text}"), S::BAD_REQUEST),
        Bad::raw("single quotes", "{'currency': 'EUR'}", S::BAD_REQUEST),
        Bad::raw(
            "trailing comma",
            replacing(&text, r#""currency":"EUR""#, r#""currency":"EUR","#),
            S::BAD_REQUEST,
        ),
        Bad::raw("a comment", format!("// order\n{text}"), S::BAD_REQUEST),
        Bad::raw(
            "NaN",
            replacing(&text, r#""quantity":2"#, r#""quantity":NaN"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "Infinity",
            replacing(&text, r#""quantity":2"#, r#""quantity":Infinity"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "leading zeros",
            replacing(&text, r#""quantity":2"#, r#""quantity":002"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "hex number",
            replacing(&text, r#""quantity":2"#, r#""quantity":0x2"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "explicit plus sign",
            replacing(&text, r#""quantity":2"#, r#""quantity":+2"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-8 byte order mark",
            [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-16 body",
            [0xff_u8, 0xfe]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        // ---- not UTF-8, control characters, NUL -----------------------------
        Bad::raw(
            "not UTF-8",
            b"{\"currency\": \"\xff\"}".to_vec(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "not UTF-8 in a key",
            b"{\"cur\xc3\x28ency\": \"EUR\"}".to_vec(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "overlong UTF-8 encoding of '/'",
            replacing(&text, "Ada Lovelace", "Ada \u{0}Lovelace")
                .into_iter()
                .flat_map(|b| if b == 0 { vec![0xc0, 0xaf] } else { vec![b] })
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-8 encoded surrogate",
            replacing(&text, "Ada Lovelace", "Ada \u{0}Lovelace")
                .into_iter()
                .flat_map(|b| {
                    if b == 0 {
                        vec![0xed, 0xa0, 0x80]
                    } else {
                        vec![b]
                    }
                })
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "lone surrogate escape",
            replacing(&text, "Ada Lovelace", r"Ada \ud800 Lovelace"),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "raw NUL byte in a string",
            replacing(&text, "Ada Lovelace", "Ada\u{0}Lovelace"),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "raw newline in a string",
            replacing(&text, "Ada Lovelace", "Ada\nLovelace"),
            S::BAD_REQUEST,
        ),
        Bad::invalid(
            "NUL in a name",
            with(valid.clone(), "/customer/name", json!("Ada\u{0}")),
            "customer.name",
        ),
        Bad::invalid(
            "NUL in an e-mail",
            with(
                valid.clone(),
                "/customer/email",
                json!("ada\u{0}@example.com"),
            ),
            "customer.email",
        ),
        Bad::invalid(
            "BEL in a street",
            with(
                valid.clone(),
                "/billing_address/street",
                json!("1 Analytical\u{7} Way"),
            ),
            "billing_address.street",
        ),
        Bad::invalid(
            "ANSI escape in a city",
            with(
                valid.clone(),
                "/shipping_address/city",
                json!("Mun\u{1b}[2Jich"),
            ),
            "shipping_address.city",
        ),
        Bad::invalid(
            "DEL in a product name",
            with(valid.clone(), "/lines/0/name", json!("iPod\u{7f}nano")),
            "lines[0].name",
        ),
        Bad::invalid(
            "C1 control (NEL) in a zip",
            with(valid.clone(), "/billing_address/zip", json!("101\u{85}15")),
            "billing_address.zip",
        ),
        Bad::invalid(
            "NUL in a sku",
            with(valid.clone(), "/lines/1/sku", json!("CASE\u{0}")),
            "lines[1].sku",
        ),
        Bad::invalid(
            "NUL in a currency",
            with(valid.clone(), "/currency", json!("EU\u{0}")),
            "currency",
        ),
        Bad {
            field: Some("reason"),
            ..cancel(
                "NUL in a cancel reason",
                unknown,
                json!({ "reason": "changed\u{0}my mind" }).to_string(),
                S::UNPROCESSABLE_ENTITY,
            )
        },
        Bad::raw(
            "NUL in a field name",
            replacing(&text, r#""currency""#, r#""currency\u0000""#),
            S::UNPROCESSABLE_ENTITY,
        ),
        // ---- wrong types ----------------------------------------------------
        Bad::post(
            "array instead of an object",
            json!([valid.clone()]),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "customer as an array",
            with(
                valid.clone(),
                "/customer",
                json!(["Ada", "ada@example.com"]),
            ),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "quantity as a string",
            with(valid.clone(), "/lines/0/quantity", json!("2")),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "lines as an object",
            with(valid.clone(), "/lines", json!({})),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "currency as a number",
            with(valid.clone(), "/currency", json!(978)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "quantity as a boolean",
            with(valid.clone(), "/lines/0/quantity", json!(true)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "price as an array",
            with(valid.clone(), "/lines/0/unit_price_cents", json!([14900])),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "name as a number",
            with(valid.clone(), "/customer/name", json!(42)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "e-mail as an object",
            with(valid.clone(), "/customer/email", json!({ "@": "x" })),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "a null line",
            with(valid.clone(), "/lines", json!([null])),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "a number as a line",
            with(valid.clone(), "/lines", json!([1])),
            S::BAD_REQUEST,
        ),
        Bad::raw("body null", "null", S::BAD_REQUEST),
        Bad::raw("body an empty array", "[]", S::BAD_REQUEST),
        Bad::raw("body a string", r#""an order, please""#, S::BAD_REQUEST),
        Bad::raw("body a number", "42", S::BAD_REQUEST),
        Bad::raw("body true", "true", S::BAD_REQUEST),
        // ---- huge and odd numbers -------------------------------------------
        Bad::raw(
            "quantity 1e400",
            replacing(&text, r#""quantity":2"#, r#""quantity":1e400"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "price -1e400",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                r#""unit_price_cents":-1e400"#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "a number of 10 000 digits",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                &format!(r#""unit_price_cents":{}"#, "9".repeat(10_000)),
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "quantity 2^64",
            replacing(
                &text,
                r#""quantity":2"#,
                r#""quantity":18446744073709551616"#,
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        // `-0` is 0, a valid price (JSON Schema's `integer` says so too); `-1.0` is -1.
        Bad::raw(
            "price -1.0",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                r#""unit_price_cents":-1.0"#,
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        Bad::invalid(
            "fractional quantity",
            with(valid.clone(), "/lines/0/quantity", json!(1.5)),
            "lines[0].quantity",
        ),
        // `2e0` is 2 (JSON Schema's `integer` counts it so); `25e-1` is 2.5.
        Bad::raw(
            "fractional quantity in exponent form",
            replacing(&text, r#""quantity":2"#, r#""quantity":25e-1"#),
            S::UNPROCESSABLE_ENTITY,
        ),
        Bad::invalid(
            "price below i64",
            with(
                valid.clone(),
                "/lines/1/unit_price_cents",
                json!(-9_223_372_036_854_775_809.0),
            ),
            "lines[1].unit_price_cents",
        ),
        Bad::invalid(
            "overflowing amounts",
            with(
                with(valid.clone(), "/lines/0/unit_price_cents", json!(i64::MAX)),
                "/lines/0/quantity",
                json!(u64::MAX),
            ),
            "lines[0].unit_price_cents",
        ),
        // The price and quantity ranges make every product and every total of
        // 100 lines fit an i64; amounts that would overflow are out of range.
        Bad::invalid(
            "quantity × price beyond i64",
            with(
                with(
                    valid.clone(),
                    "/lines/0/unit_price_cents",
                    json!(i64::MAX / 5_000),
                ),
                "/lines/0/quantity",
                json!(10_000),
            ),
            "lines[0].unit_price_cents",
        ),
        Bad::invalid(
            "total of 100 lines beyond i64",
            with(
                valid.clone(),
                "/lines",
                lines(json!(1), json!(i64::MAX / 50)),
            ),
            "lines[99].unit_price_cents",
        ),
        Bad::invalid(
            "100 lines at i64::MIN",
            with(valid.clone(), "/lines", lines(json!(1), json!(i64::MIN))),
            "lines[0].unit_price_cents",
        ),
        // ---- deep nesting: 400, not a stack overflow -------------------------
        Bad::raw("10 000 opening brackets", "[".repeat(DEEP), S::BAD_REQUEST),
        Bad::raw(
            "10 000 nested arrays",
            nested_arrays.clone(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "10 000 nested objects",
            nested_objects.clone(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "10 000 nested arrays as a name",
            replacing(&text, r#""Ada Lovelace""#, &nested_arrays),
            S::BAD_REQUEST,
        ),
        cancel(
            "10 000 nested objects as a cancel body",
            unknown,
            nested_objects,
            S::BAD_REQUEST,
        ),
        // ---- duplicate keys: ambiguous, so refused ----------------------------
        Bad::raw(
            "duplicate currency",
            replacing(
                &text,
                r#""currency":"EUR""#,
                r#""currency":"EUR","currency":"USD""#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "duplicate currency, once spelled with an escape",
            replacing(
                &text,
                r#""currency":"EUR""#,
                r#""currency":"EUR","\u0063urrency":"USD""#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "duplicate quantity",
            replacing(&text, r#""quantity":2"#, r#""quantity":2,"quantity":3"#),
            S::BAD_REQUEST,
        ),
        // ---- size -----------------------------------------------------------
        Bad::post(
            "body over 64 KiB",
            with(
                valid.clone(),
                "/customer/name",
                json!("x".repeat(70 * 1024)),
            ),
            S::PAYLOAD_TOO_LARGE,
        ),
        Bad::raw("10 MB body", ten_megabytes, S::PAYLOAD_TOO_LARGE),
    ]
}
