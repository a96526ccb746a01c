//! Money and quantities: integer cents and checked arithmetic only.
//!
//! Amounts are `i64` cents, never floating point. Every product and sum is
//! checked; an overflow is a validation error, not a wrapped number or a panic.
//! With the bounds below an order total cannot actually overflow
//! (100 lines x 10 000 units x 100 000 000 cents = 10^14), but the arithmetic
//! does not rely on that: change a bound and it stays correct.

use std::fmt;

/// The most units one line may order.
pub const MAX_QUANTITY: u16 = 10_000;
/// The highest unit price, in cents (one million in the currency's main unit).
pub const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;
/// The accepted quantities, for error messages.
pub const QUANTITY_RANGE: OutOfRange = OutOfRange {
    min: 1,
    max: MAX_QUANTITY as i64,
};
/// The accepted unit prices in cents, for error messages.
pub const UNIT_PRICE_RANGE: OutOfRange = OutOfRange {
    min: 0,
    max: MAX_UNIT_PRICE_CENTS,
};

/// An amount of money in the order's currency, in cents (never negative here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

/// The result of an arithmetic step did not fit in an `i64` of cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the amount exceeds the largest representable number of cents")]
pub struct Overflow;

/// Why a number was rejected as a unit price or a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number from {min} to {max}")]
pub struct OutOfRange {
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

impl Cents {
    /// Zero cents.
    pub const ZERO: Cents = Cents(0);

    /// A unit price: 0 to [`MAX_UNIT_PRICE_CENTS`].
    pub fn unit_price(cents: i64) -> Result<Self, OutOfRange> {
        if (0..=MAX_UNIT_PRICE_CENTS).contains(&cents) {
            Ok(Cents(cents))
        } else {
            Err(UNIT_PRICE_RANGE)
        }
    }

    /// The amount as a plain number of cents.
    pub fn get(self) -> i64 {
        self.0
    }

    /// `self * quantity`, or [`Overflow`].
    pub fn times(self, quantity: Quantity) -> Result<Cents, Overflow> {
        self.0
            .checked_mul(i64::from(quantity.0))
            .map(Cents)
            .ok_or(Overflow)
    }

    /// `self + other`, or [`Overflow`].
    pub fn plus(self, other: Cents) -> Result<Cents, Overflow> {
        self.0.checked_add(other.0).map(Cents).ok_or(Overflow)
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cents", self.0)
    }
}

/// How many units of one line: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u16);

impl Quantity {
    /// Validates a requested quantity.
    pub fn new(units: i64) -> Result<Self, OutOfRange> {
        u16::try_from(units)
            .ok()
            .filter(|u| (1..=MAX_QUANTITY).contains(u))
            .map(Quantity)
            .ok_or(QUANTITY_RANGE)
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    /// The number of units as the database stores it (`INTEGER`).
    pub fn as_i32(self) -> i32 {
        i32::from(self.0)
    }
}

/// Sums amounts with checked addition.
pub fn checked_sum(amounts: impl IntoIterator<Item = Cents>) -> Result<Cents, Overflow> {
    amounts.into_iter().try_fold(Cents::ZERO, Cents::plus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_bounded() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert!(Quantity::new(10_001).is_err());
        assert!(Quantity::new(i64::MAX).is_err());
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(10_000).map(Quantity::get), Ok(10_000));
    }

    #[test]
    fn unit_prices_are_bounded() {
        assert!(Cents::unit_price(-1).is_err());
        assert!(Cents::unit_price(100_000_001).is_err());
        assert_eq!(Cents::unit_price(0), Ok(Cents::ZERO));
        assert_eq!(
            Cents::unit_price(100_000_000).map(Cents::get),
            Ok(100_000_000)
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let q = Quantity::new(2).unwrap();
        assert_eq!(Cents(14_900).times(q), Ok(Cents(29_800)));
        assert_eq!(Cents(i64::MAX).times(q), Err(Overflow));
        assert_eq!(Cents(i64::MAX).plus(Cents(1)), Err(Overflow));
        assert_eq!(checked_sum([Cents(1), Cents(2)]), Ok(Cents(3)));
        assert_eq!(checked_sum([Cents(i64::MAX), Cents(1)]), Err(Overflow));
        assert_eq!(checked_sum([]), Ok(Cents::ZERO));
    }

    #[test]
    fn the_largest_possible_order_fits() {
        let line = Cents(MAX_UNIT_PRICE_CENTS)
            .times(Quantity::new(i64::from(MAX_QUANTITY)).unwrap())
            .unwrap();
        let total = checked_sum(std::iter::repeat_n(line, 100)).unwrap();
        assert_eq!(total.get(), 100_000_000_000_000);
    }
}
