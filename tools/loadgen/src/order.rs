//! Orders as a client would send them: one to five lines, mixed currencies,
//! customers who ship to an address other than their billing one.

use orderflow_client::{Address, Customer, OrderLine, PlaceOrder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One line as the consumers should record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedLine {
    /// Stock-keeping unit, unique within the order.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Quantity, 1 to 12.
    pub quantity: i32,
    /// Unit price in minor units.
    pub unit_price_cents: i64,
}

/// What invoicing and shipping should hold for an order once it is processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedOrder {
    /// The customer's name (the invoice's customer, the shipment's recipient).
    pub customer_name: String,
    /// The billing city (invoicing only).
    pub billing_city: String,
    /// The shipping street (shipping only).
    pub shipping_street: String,
    /// The shipping city (shipping only).
    pub shipping_city: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of quantity × unit price over the lines.
    pub total_cents: i64,
    /// The lines in request order.
    pub lines: Vec<ExpectedLine>,
}

/// One order: the `POST /orders` body and what it should become.
#[derive(Debug, Clone)]
pub struct GeneratedOrder {
    /// The request body.
    pub body: PlaceOrder,
    /// What the consumers should record.
    pub expected: ExpectedOrder,
}

impl GeneratedOrder {
    /// The request body as JSON bytes (for clients that send raw bodies).
    pub fn body_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.body)
    }
}

impl From<&ExpectedLine> for OrderLine {
    fn from(line: &ExpectedLine) -> Self {
        OrderLine {
            sku: line.sku.clone(),
            name: line.name.clone(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        }
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Tony", "Margaret",
    "Niklaus", "Radia", "Leslie", "Hedy", "Ken", "Sophie", "Dennis",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Hoare", "Hamilton",
    "Wirth", "Perlman", "Lamport", "Lamarr", "Thompson", "Wilson", "Ritchie",
];
/// (city, zip prefix, country, currency)
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("London", "EC1A", "GB", "GBP"),
    ("Manchester", "M1", "GB", "GBP"),
    ("Berlin", "10115", "DE", "EUR"),
    ("Hamburg", "20095", "DE", "EUR"),
    ("Paris", "75001", "FR", "EUR"),
    ("Lyon", "69001", "FR", "EUR"),
    ("Amsterdam", "1012", "NL", "EUR"),
    ("Zurich", "8001", "CH", "CHF"),
    ("New York", "10001", "US", "USD"),
    ("Austin", "73301", "US", "USD"),
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Hauptstraße",
    "Rue de la Paix",
    "Main Street",
    "Kerkstraat",
    "Bahnhofstrasse",
    "Church Lane",
    "Market Square",
    "Elm Avenue",
];
/// (sku, name, unit price in cents)
const PRODUCTS: &[(&str, &str, i64)] = &[
    ("BK-001", "The Art of Computer Programming, Vol. 1", 7_999),
    (
        "BK-002",
        "Structure and Interpretation of Computer Programs",
        5_450,
    ),
    ("BK-003", "Designing Data-Intensive Applications", 4_299),
    ("KB-101", "Mechanical keyboard", 12_900),
    ("MS-102", "Wireless mouse", 2_999),
    ("MN-201", "27-inch monitor", 32_900),
    ("CB-301", "USB-C cable, 2 m", 1_299),
    ("HD-401", "Noise-cancelling headphones", 24_900),
    ("MG-501", "Coffee mug", 1_150),
    ("ST-601", "Sticker pack", 350),
    ("LP-701", "Laptop stand", 4_990),
    ("DK-801", "Docking station", 18_999),
];

/// A reproducible stream of varied orders.
#[derive(Debug)]
pub struct OrderGenerator {
    rng: StdRng,
}

impl OrderGenerator {
    /// The same seed yields the same orders.
    pub fn new(seed: u64) -> Self {
        OrderGenerator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next order.
    pub fn next_order(&mut self) -> GeneratedOrder {
        let rng = &mut self.rng;
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let customer_name = format!("{first} {last}");
        let email = format!(
            "{}.{}{}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
            rng.random_range(1..1000)
        );
        let billing = CITIES[rng.random_range(0..CITIES.len())];
        // Most customers ship where they are billed, within the same country otherwise.
        let shipping = if rng.random_bool(0.6) {
            billing
        } else {
            let same_country: Vec<_> = CITIES.iter().filter(|c| c.2 == billing.2).collect();
            *same_country[rng.random_range(0..same_country.len())]
        };
        let mut street = || {
            format!(
                "{} {}",
                rng.random_range(1..300),
                STREETS[rng.random_range(0..STREETS.len())]
            )
        };
        let billing_street = street();
        let shipping_street = street();
        let currency = billing.3;

        let line_count = rng.random_range(1..=5);
        let mut products: Vec<usize> = (0..PRODUCTS.len()).collect();
        let mut lines = Vec::with_capacity(line_count);
        for _ in 0..line_count {
            let (sku, name, price) =
                PRODUCTS[products.swap_remove(rng.random_range(0..products.len()))];
            lines.push(ExpectedLine {
                sku: sku.to_owned(),
                name: name.to_owned(),
                quantity: rng.random_range(1..=12),
                unit_price_cents: price,
            });
        }
        let total_cents = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        let address = |street: &str, city: &(&str, &str, &str, &str)| Address {
            street: street.to_owned(),
            zip: format!("{} {}", city.1, 100 + (street.len() % 900)),
            city: city.0.to_owned(),
            country: city.2.to_owned(),
        };
        let body = PlaceOrder {
            customer: Customer {
                name: customer_name.clone(),
                email,
            },
            billing_address: address(&billing_street, &billing),
            shipping_address: address(&shipping_street, &shipping),
            currency: currency.to_owned(),
            lines: lines.iter().map(OrderLine::from).collect(),
        };
        GeneratedOrder {
            body,
            expected: ExpectedOrder {
                customer_name,
                billing_city: billing.0.to_owned(),
                shipping_street,
                shipping_city: shipping.0.to_owned(),
                currency: currency.to_owned(),
                total_cents,
                lines,
            },
        }
    }
}

impl OrderGenerator {
    /// The next order, grown to `lines` lines (at most the API's 100) with
    /// long product names: its `OrderPlaced` event is about 300 bytes per
    /// line, for scenarios about records a topic refuses as too large.
    pub fn large_order(&mut self, lines: usize) -> GeneratedOrder {
        let mut order = self.next_order();
        let lines = lines.clamp(1, 100);
        let expected: Vec<ExpectedLine> = (0..lines)
            .map(|i| ExpectedLine {
                sku: format!("LARGE-{i:03}"),
                // 200 characters: the longest product name the API accepts.
                name: format!("{:-<200}", format!("Oversized catalogue item {i} ")),
                quantity: 1 + (i % 3) as i32,
                unit_price_cents: 100 + i as i64,
            })
            .collect();
        order.expected.total_cents = expected
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        order.body.lines = expected.iter().map(OrderLine::from).collect();
        order.expected.lines = expected;
        order
    }
}

impl Iterator for OrderGenerator {
    type Item = GeneratedOrder;

    fn next(&mut self) -> Option<GeneratedOrder> {
        Some(self.next_order())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders_and_another_seed_others() {
        let a: Vec<PlaceOrder> = OrderGenerator::new(7).take(20).map(|o| o.body).collect();
        let b: Vec<PlaceOrder> = OrderGenerator::new(7).take(20).map(|o| o.body).collect();
        let c: Vec<PlaceOrder> = OrderGenerator::new(8).take(20).map(|o| o.body).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_large_order_has_the_lines_asked_for_and_a_matching_total() {
        let order = OrderGenerator::new(3).large_order(100);
        let lines = &order.body.lines;
        assert_eq!(lines.len(), 100);
        assert_eq!(order.expected.lines.len(), 100);
        assert!(lines.iter().all(|l| l.name.len() == 200));
        let total: i64 = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        assert_eq!(total, order.expected.total_cents);
        assert!(
            order.body_bytes().expect("json").len() > 25_000,
            "about 300 bytes per line"
        );
    }

    #[test]
    fn expectations_match_the_body() {
        for order in OrderGenerator::new(1).take(500) {
            let lines = &order.body.lines;
            assert_eq!(lines.len(), order.expected.lines.len());
            assert!((1..=5).contains(&lines.len()));
            let total: i64 = lines
                .iter()
                .map(|l| i64::from(l.quantity) * l.unit_price_cents)
                .sum();
            assert_eq!(total, order.expected.total_cents);
            let mut skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
            skus.sort_unstable();
            skus.dedup();
            assert_eq!(skus.len(), lines.len(), "skus are unique within an order");
            assert_eq!(order.body.currency, order.expected.currency);
            assert_eq!(
                order.body.shipping_address.city,
                order.expected.shipping_city
            );
            assert_eq!(
                order.body.billing_address.country,
                order.body.shipping_address.country
            );
        }
    }
}
