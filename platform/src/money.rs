//! Money as the API carries it (whole minor units) and as people write it.
//!
//! The API and the events carry every amount as an integer of the currency's
//! minor unit: `unit_price_cents: 1999` is EUR 19.99, and JPY 1,999 (the yen
//! has no minor unit). How many decimal places a currency has, its
//! *exponent*, is ISO 4217's to say: 2 for EUR and USD, 0 for JPY, 3 for KWD,
//! 4 for CLF. So an order may carry only a currency whose exponent is known:
//! an active ISO 4217 code with a minor unit ([`exponent`]); the codes
//! without one (gold, special drawing rights, the testing code XTS) and the
//! superseded ones are refused, or no amount in them could be shown.
//!
//! The pages speak the currency's own units: [`format`] writes `EUR 1,999.00`
//! and `JPY 1,999`, and [`parse`] reads what a person types (`19.99`) into
//! minor units, refusing more decimals than the currency has. The API never
//! does either: a number in it is always minor units, so it is never rounded.

use iso_currency::Currency;

/// The number of decimal places of `code`'s minor unit, if `code` is a
/// currency an order may carry: an active ISO 4217 code (upper case) with a
/// minor unit.
pub fn exponent(code: &str) -> Option<u32> {
    let currency = Currency::from_code(code)?;
    if currency.is_superseded().is_some() {
        return None;
    }
    currency.exponent().map(u32::from)
}

/// Every code an order may carry, sorted (for the API's documents).
pub fn accepted_codes() -> Vec<&'static str> {
    // Every ISO 4217 currency has a numeric code from 001 to 999.
    let mut codes: Vec<&'static str> = (1..1000)
        .filter_map(Currency::from_numeric)
        .map(|c| c.code())
        .filter(|code| exponent(code).is_some())
        .collect();
    codes.sort_unstable();
    codes
}

/// `minor` units of `currency` as `EUR 1,234.56` or `JPY 1,999`; an amount
/// in a currency without a known exponent (one written before the rule, a
/// foreign event) as its minor units, saying so: `XXX 1,999 (minor units)`.
pub fn format(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let units = minor.unsigned_abs();
    match exponent(currency) {
        Some(0) => format!("{currency} {sign}{}", group(units)),
        Some(places) => {
            let scale = 10_u64.pow(places);
            format!(
                "{currency} {sign}{}.{:0width$}",
                group(units / scale),
                units % scale,
                width = places as usize
            )
        }
        None => format!("{currency} {sign}{} (minor units)", group(units)),
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why a typed amount cannot be read; each says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with at most one decimal point.
    #[error("must be an amount in {currency} such as {example}: digits{}", point(*.places))]
    NotAnAmount {
        /// The currency's code.
        currency: String,
        /// Its decimal places.
        places: u32,
        /// An amount in it, written as [`parse`] reads it.
        example: String,
    },
    /// More decimal places than the currency has.
    #[error("{currency} has {}; {typed} has {given}", places_words(*.places))]
    TooPrecise {
        /// The currency's code.
        currency: String,
        /// Its decimal places.
        places: u32,
        /// The amount as typed (trimmed).
        typed: String,
        /// The decimal places typed.
        given: usize,
    },
    /// More minor units than an `i64` holds (far beyond any accepted price).
    #[error("is too large")]
    TooLarge,
}

fn point(places: u32) -> &'static str {
    if places == 0 {
        ", no decimal point"
    } else {
        " and a decimal point"
    }
}

fn places_words(places: u32) -> String {
    match places {
        0 => "no minor unit: type a whole amount".to_owned(),
        1 => "1 decimal place".to_owned(),
        n => format!("{n} decimal places"),
    }
}

/// What a person typed as an amount of `currency` (whose exponent is
/// `places`), in minor units: `19.99` EUR is 1999, `19.9` is 1990, `19` is
/// 1900, `1999` JPY is 1999. Digits with at most one `.`; no sign (amounts
/// typed on a page are prices), no thousands separators (`1,999` would mean
/// 1.999 in half of Europe), no more decimals than the currency has. Blank
/// is `None`: the caller says the field is required.
pub fn parse(typed: &str, currency: &str, places: u32) -> Result<Option<i64>, AmountError> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Ok(None);
    }
    let (whole, fraction) = typed.split_once('.').unwrap_or((typed, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || typed.ends_with('.') {
        return Err(AmountError::NotAnAmount {
            currency: currency.to_owned(),
            places,
            example: if places == 0 {
                "1999".to_owned()
            } else {
                format!("19.{}", "9".repeat(places as usize))
            },
        });
    }
    if fraction.len() > places as usize {
        return Err(AmountError::TooPrecise {
            currency: currency.to_owned(),
            places,
            typed: typed.to_owned(),
            given: fraction.len(),
        });
    }
    let padded = format!("{whole}{fraction:0<width$}", width = places as usize);
    padded
        .parse::<i64>()
        .map(Some)
        .map_err(|_| AmountError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_are_iso_4217s_and_only_currencies_with_a_minor_unit_are_accepted() {
        assert_eq!(exponent("EUR"), Some(2));
        assert_eq!(exponent("USD"), Some(2));
        assert_eq!(exponent("JPY"), Some(0));
        assert_eq!(exponent("KWD"), Some(3));
        assert_eq!(exponent("CLF"), Some(4));
        for refused in ["XAU", "XDR", "XTS", "XXX", "HRK", "eur", "EURO", "", "ABC"] {
            assert_eq!(exponent(refused), None, "{refused}");
        }
        let codes = accepted_codes();
        assert!(codes.len() > 150, "{}", codes.len());
        assert!(codes.is_sorted());
        assert!(codes.contains(&"EUR") && codes.contains(&"JPY"));
        assert!(!codes.contains(&"XAU"));
    }

    #[test]
    fn amounts_are_written_in_the_currencys_own_units() {
        assert_eq!(format(31_799, "EUR"), "EUR 317.99");
        assert_eq!(format(5, "USD"), "USD 0.05");
        assert_eq!(format(123_456_789, "EUR"), "EUR 1,234,567.89");
        assert_eq!(format(-150, "EUR"), "EUR -1.50");
        assert_eq!(format(1_999, "JPY"), "JPY 1,999");
        assert_eq!(format(0, "JPY"), "JPY 0");
        assert_eq!(format(1_005, "KWD"), "KWD 1.005");
        assert_eq!(format(1_999, "XXX"), "XXX 1,999 (minor units)");
    }

    #[test]
    fn typed_amounts_become_minor_units() {
        let eur = |typed: &str| parse(typed, "EUR", 2);
        assert_eq!(eur("19.99"), Ok(Some(1_999)));
        assert_eq!(eur(" 19.9 "), Ok(Some(1_990)));
        assert_eq!(eur("19"), Ok(Some(1_900)));
        assert_eq!(eur("0.05"), Ok(Some(5)));
        assert_eq!(eur("007.10"), Ok(Some(710)));
        assert_eq!(eur(""), Ok(None));
        assert_eq!(eur("   "), Ok(None));
        assert_eq!(parse("1999", "JPY", 0), Ok(Some(1_999)));
        assert_eq!(parse("1.005", "KWD", 3), Ok(Some(1_005)));
        assert_eq!(eur("99999999999999999999"), Err(AmountError::TooLarge));
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_refused_saying_how_many_it_has() {
        let error = parse("19.999", "EUR", 2).unwrap_err();
        assert_eq!(error.to_string(), "EUR has 2 decimal places; 19.999 has 3");
        let error = parse("19.5", "JPY", 0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "JPY has no minor unit: type a whole amount; 19.5 has 1"
        );
    }

    #[test]
    fn anything_but_digits_and_one_point_is_refused_with_an_example() {
        for bad in [
            "19,99", "1,999", "-1", "+1", "1e3", ".5", "5.", "1.2.3", "€5", "five",
        ] {
            assert!(
                matches!(parse(bad, "EUR", 2), Err(AmountError::NotAnAmount { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse("19,99", "EUR", 2).unwrap_err().to_string(),
            "must be an amount in EUR such as 19.99: digits and a decimal point"
        );
        assert_eq!(
            parse("1,999", "JPY", 0).unwrap_err().to_string(),
            "must be an amount in JPY such as 1999: digits, no decimal point"
        );
    }
}
