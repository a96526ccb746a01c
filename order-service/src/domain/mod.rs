//! The order as the business sees it: values that are valid by construction.
//!
//! "Parse, don't validate": every type here can only be built through a
//! constructor that checks its rules, so code holding a [`NewOrder`] never
//! re-checks anything. The HTTP layer turns a request into these values and
//! names each rejected field by its JSON path; the store writes them as they are.

pub mod country;
pub mod money;

use std::collections::HashMap;
use std::fmt;

pub use money::{Cents, Overflow, Quantity};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;

/// Why a single value was rejected, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Invalid(message.into())
    }
}

/// Free text of 1 to `MAX` characters, trimmed, without control characters
/// (PostgreSQL cannot store NUL, and no name or street needs a tab).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// The most characters the text may have after trimming.
    pub const MAX_CHARS: usize = MAX;

    /// Trims `raw` and checks its length and characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        let chars = text.chars().count();
        if chars == 0 {
            return Err(Invalid::new(format!(
                "must be 1 to {MAX} characters and not blank"
            )));
        }
        if chars > MAX {
            return Err(Invalid::new(format!(
                "must be at most {MAX} characters after trimming, got {chars}"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(Invalid::new("must not contain control characters"));
        }
        Ok(Text(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's name: 1 to 200 characters.
pub type PersonName = Text<200>;
/// A product's name as shown to the customer: 1 to 200 characters.
pub type ProductName = Text<200>;
/// Street and number: 1 to 200 characters.
pub type Street = Text<200>;
/// Postal code: 1 to 20 characters.
pub type Zip = Text<20>;
/// City: 1 to 100 characters.
pub type City = Text<100>;
/// Why an order was cancelled: 1 to 500 characters.
pub type CancelReason = Text<500>;

/// A plausible e-mail address: one `@` between non-empty parts, at most 254
/// characters, no white space or control characters. Whether it receives
/// mail is not our question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Longest address, in characters (RFC 5321's path limit minus the
    /// brackets, which SMTP counts in octets; characters are what a person
    /// and the document's `pattern` can count).
    pub const MAX_LEN: usize = 254;

    /// Trims `raw` and checks that it looks like an address.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        let plausible = email.chars().count() <= Self::MAX_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if plausible {
            Ok(Email(email.to_owned()))
        } else {
            Err(Invalid::new(format!(
                "must be an e-mail address such as ada@example.com: one @ between a non-empty \
                 name and domain, no spaces, at most {} characters",
                Self::MAX_LEN
            )))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An assigned ISO 3166-1 alpha-2 country code, upper case (`DE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Country(String);

impl Country {
    /// Accepts exactly an assigned code from [`country::ASSIGNED`].
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if country::is_assigned(raw) {
            Ok(Country(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "must be an assigned ISO 3166-1 alpha-2 country code in upper case, such as DE",
            ))
        }
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency code with a minor unit, upper case (`EUR`): one
/// whose amounts can be shown ([`platform::money`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Accepts exactly an active ISO 4217 code that has a minor unit.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if platform::money::exponent(raw).is_some() {
            Ok(Currency(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "must be an ISO 4217 currency code in upper case, such as EUR \
                 (one in use, with a minor unit)",
            ))
        }
    }

    /// The three-letter code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stock keeping unit: 1 to 64 of `A-Z a-z 0-9 . _ -`, taken as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    /// Longest accepted SKU.
    pub const MAX_LEN: usize = 64;

    /// Checks length and alphabet; no trimming (a space is simply invalid).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let valid = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Sku(raw.to_owned()))
        } else {
            Err(Invalid::new(format!(
                "must be 1 to {} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                Self::MAX_LEN
            )))
        }
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// For each SKU that repeats an earlier one: `(its index, the first index)`.
pub fn duplicate_skus<'a>(skus: impl IntoIterator<Item = (usize, &'a Sku)>) -> Vec<(usize, usize)> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut duplicates = Vec::new();
    for (index, sku) in skus {
        match first_seen.get(sku.as_str()) {
            Some(&first) => duplicates.push((index, first)),
            None => {
                first_seen.insert(sku.as_str(), index);
            }
        }
    }
    duplicates
}

/// The person who orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Full name.
    pub name: PersonName,
    /// Contact address.
    pub email: Email,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Street and number.
    pub street: Street,
    /// Postal code.
    pub zip: Zip,
    /// City.
    pub city: City,
    /// Country.
    pub country: Country,
}

/// One priced line; its total is computed, never supplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    sku: Sku,
    name: ProductName,
    quantity: Quantity,
    unit_price: Cents,
    line_total: Cents,
}

impl OrderLine {
    /// A line of `quantity` units at `unit_price`; fails only if the total overflows.
    pub fn new(
        sku: Sku,
        name: ProductName,
        quantity: Quantity,
        unit_price: Cents,
    ) -> Result<Self, Overflow> {
        let line_total = unit_price.times(quantity)?;
        Ok(OrderLine {
            sku,
            name,
            quantity,
            unit_price,
            line_total,
        })
    }

    /// The SKU.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    /// The product name.
    pub fn name(&self) -> &ProductName {
        &self.name
    }

    /// Units ordered.
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// Price of one unit.
    pub fn unit_price(&self) -> Cents {
        self.unit_price
    }

    /// `quantity * unit_price`.
    pub fn line_total(&self) -> Cents {
        self.line_total
    }
}

/// An order rule that spans several fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRuleViolation {
    /// Too few or too many lines.
    #[error("must have 1 to {MAX_LINES} lines, got {0}")]
    LineCount(usize),
    /// Line `line` repeats the SKU of line `first`.
    #[error("repeats the sku of lines[{first}]; put the quantities on one line")]
    DuplicateSku {
        /// The repeating line.
        line: usize,
        /// The line that has the SKU first.
        first: usize,
    },
    /// The lines add up to more cents than an `i64` holds.
    #[error("the order total exceeds the largest representable amount")]
    TotalOverflow,
}

/// A valid order that has not been stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    customer: Customer,
    billing_address: Address,
    shipping_address: Address,
    currency: Currency,
    lines: Vec<OrderLine>,
    total: Cents,
}

impl NewOrder {
    /// Checks the rules across lines (count, unique SKUs, total) and computes the total.
    pub fn new(
        customer: Customer,
        billing_address: Address,
        shipping_address: Address,
        currency: Currency,
        lines: Vec<OrderLine>,
    ) -> Result<Self, Vec<OrderRuleViolation>> {
        if !(1..=MAX_LINES).contains(&lines.len()) {
            return Err(vec![OrderRuleViolation::LineCount(lines.len())]);
        }
        let mut violations: Vec<OrderRuleViolation> =
            duplicate_skus(lines.iter().map(OrderLine::sku).enumerate())
                .into_iter()
                .map(|(line, first)| OrderRuleViolation::DuplicateSku { line, first })
                .collect();
        let total = money::checked_sum(lines.iter().map(OrderLine::line_total));
        if total.is_err() {
            violations.push(OrderRuleViolation::TotalOverflow);
        }
        match total {
            Ok(total) if violations.is_empty() => Ok(NewOrder {
                customer,
                billing_address,
                shipping_address,
                currency,
                lines,
                total,
            }),
            _ => Err(violations),
        }
    }

    /// Who orders.
    pub fn customer(&self) -> &Customer {
        &self.customer
    }

    /// Where the invoice goes.
    pub fn billing_address(&self) -> &Address {
        &self.billing_address
    }

    /// Where the parcel goes.
    pub fn shipping_address(&self) -> &Address {
        &self.shipping_address
    }

    /// The currency of every amount.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    /// The lines, in request order.
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    /// Sum of the line totals.
    pub fn total(&self) -> Cents {
        self.total
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted and committed.
    Placed,
    /// Cancelled; final.
    Cancelled,
}

impl OrderStatus {
    /// The name used in the API and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "placed" => Some(OrderStatus::Placed),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters() {
        assert_eq!(PersonName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("").is_err());
        assert!(PersonName::parse(&"x".repeat(200)).is_ok());
        assert!(PersonName::parse(&"x".repeat(201)).is_err());
        // 200 characters of two bytes each are still 200 characters.
        assert!(PersonName::parse(&"ä".repeat(200)).is_ok());
        assert!(Zip::parse(&"1".repeat(21)).is_err());
        assert!(City::parse(&"c".repeat(100)).is_ok());
        assert!(PersonName::parse("Ada\0Lovelace").is_err());
        assert!(PersonName::parse("Ada\tLovelace").is_err());
    }

    #[test]
    fn emails_must_be_plausible() {
        for ok in ["ada@example.com", "a@b", " ada@example.com "] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "ada lovelace@example.com",
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_and_countries() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EURO", "E1R", "", "ÄÖÜ"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(Country::parse("DE").is_ok());
        assert!(Country::parse("de").is_err());
        assert!(Country::parse("XX").is_err());
    }

    #[test]
    fn skus_have_a_small_alphabet() {
        for ok in ["IPOD-NANO", "CASE.BLK_1", "a", &"x".repeat(64)] {
            assert!(Sku::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", " IPOD", "IPOD NANO", "ipod/nano", "ä", &"x".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad}");
        }
    }

    fn line(sku: &str, quantity: i64, price: i64) -> OrderLine {
        OrderLine::new(
            Sku::parse(sku).unwrap(),
            ProductName::parse("thing").unwrap(),
            Quantity::new(quantity).unwrap(),
            Cents::unit_price(price).unwrap(),
        )
        .unwrap()
    }

    fn order(lines: Vec<OrderLine>) -> Result<NewOrder, Vec<OrderRuleViolation>> {
        let address = Address {
            street: Street::parse("1 Analytical Way").unwrap(),
            zip: Zip::parse("10115").unwrap(),
            city: City::parse("Berlin").unwrap(),
            country: Country::parse("DE").unwrap(),
        };
        NewOrder::new(
            Customer {
                name: PersonName::parse("Ada").unwrap(),
                email: Email::parse("ada@example.com").unwrap(),
            },
            address.clone(),
            address,
            Currency::parse("EUR").unwrap(),
            lines,
        )
    }

    #[test]
    fn totals_are_computed() {
        let o = order(vec![line("A", 2, 14_900), line("B", 1, 1_999)]).unwrap();
        assert_eq!(o.lines()[0].line_total().get(), 29_800);
        assert_eq!(o.total().get(), 31_799);
    }

    #[test]
    fn cross_line_rules() {
        assert_eq!(order(vec![]), Err(vec![OrderRuleViolation::LineCount(0)]));
        let many = (0..101).map(|i| line(&format!("S{i}"), 1, 1)).collect();
        assert_eq!(order(many), Err(vec![OrderRuleViolation::LineCount(101)]));
        assert_eq!(
            order(vec![line("A", 1, 1), line("B", 1, 1), line("A", 1, 1)]),
            Err(vec![OrderRuleViolation::DuplicateSku { line: 2, first: 0 }])
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [OrderStatus::Placed, OrderStatus::Cancelled] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }
}
