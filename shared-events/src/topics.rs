//! Topic names and their default shape.

/// The topic every order event is published to.
pub const ORDERS: &str = "orders";

/// Default partition count of [`ORDERS`]; the key (order id) spreads orders over them.
pub const ORDERS_PARTITIONS: i32 = 6;

/// The dead-letter topic of one consumer of `source`, e.g. `orders.dlq.invoicing`.
pub fn dead_letter(source: &str, consumer: &str) -> String {
    format!("{source}.dlq.{consumer}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dead_letter_topics_are_named_per_consumer() {
        assert_eq!(
            super::dead_letter(super::ORDERS, "invoicing"),
            "orders.dlq.invoicing"
        );
        assert_eq!(
            super::dead_letter(super::ORDERS, "shipping"),
            "orders.dlq.shipping"
        );
    }
}
