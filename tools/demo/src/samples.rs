//! The orders the demo places: three customers, each billed at one address
//! and shipped to another, and the one its printed `curl` places.

use orderflow_client::{Address, Customer, OrderLine, PlaceOrder};

/// A sample order: customer (name, e-mail), addresses, currency, lines (sku, name, quantity, unit price in cents).
pub(crate) struct Sample {
    pub(crate) customer: (&'static str, &'static str),
    pub(crate) billing: SampleAddress,
    pub(crate) shipping: SampleAddress,
    pub(crate) currency: &'static str,
    pub(crate) lines: &'static [(&'static str, &'static str, i32, i64)],
}

/// A sample address: street, zip, city, country.
pub(crate) struct SampleAddress {
    pub(crate) street: &'static str,
    pub(crate) zip: &'static str,
    pub(crate) city: &'static str,
    pub(crate) country: &'static str,
}

impl Sample {
    /// The body of `POST /orders`.
    pub(crate) fn request(&self) -> PlaceOrder {
        let address = |a: &SampleAddress| Address {
            street: a.street.to_owned(),
            zip: a.zip.to_owned(),
            city: a.city.to_owned(),
            country: a.country.to_owned(),
        };
        PlaceOrder {
            customer: Customer {
                name: self.customer.0.to_owned(),
                email: self.customer.1.to_owned(),
            },
            billing_address: address(&self.billing),
            shipping_address: address(&self.shipping),
            currency: self.currency.to_owned(),
            lines: self
                .lines
                .iter()
                .map(|&(sku, name, quantity, unit_price_cents)| OrderLine {
                    sku: sku.to_owned(),
                    name: name.to_owned(),
                    quantity,
                    unit_price_cents,
                })
                .collect(),
        }
    }
}

/// Which sample order the demo cancels.
pub(crate) const CANCELLED_SAMPLE: usize = 1;

/// Three customers, each billed at one address and shipped to another.
pub(crate) const SAMPLES: [Sample; 3] = [
    Sample {
        customer: ("Ada Lovelace", "ada@example.com"),
        billing: SampleAddress {
            street: "12 St James's Square",
            zip: "SW1Y 4LB",
            city: "London",
            country: "GB",
        },
        shipping: SampleAddress {
            street: "Ockham Park",
            zip: "KT24 6PD",
            city: "Ockham",
            country: "GB",
        },
        currency: "GBP",
        lines: &[
            ("NB-A5-DOT", "Notebook A5, dotted", 3, 1250),
            ("PEN-FOUNT-F", "Fountain pen, fine", 1, 4900),
            ("INK-BLUE-50", "Blue ink, 50 ml", 2, 850),
        ],
    },
    Sample {
        customer: ("Grace Hopper", "grace@example.org"),
        billing: SampleAddress {
            street: "1000 Navy Pentagon",
            zip: "20350",
            city: "Washington",
            country: "US",
        },
        shipping: SampleAddress {
            street: "2 Harvard Way",
            zip: "02138",
            city: "Cambridge",
            country: "US",
        },
        currency: "USD",
        lines: &[
            ("KB-MECH-US", "Mechanical keyboard", 1, 12900),
            ("CBL-USBC-2M", "USB-C cable, 2 m", 2, 1500),
        ],
    },
    Sample {
        customer: ("Emmy Noether", "emmy@example.de"),
        billing: SampleAddress {
            street: "Bunsenstrasse 3-5",
            zip: "37073",
            city: "Goettingen",
            country: "DE",
        },
        shipping: SampleAddress {
            street: "Hauptstrasse 12",
            zip: "91054",
            city: "Erlangen",
            country: "DE",
        },
        currency: "EUR",
        lines: &[
            ("BK-ALGEBRA", "Algebra, 2nd ed.", 1, 3900),
            ("LAMP-DESK", "Desk lamp", 1, 5900),
            ("BULB-E27", "LED bulb E27", 4, 450),
            ("CHALK-W-100", "White chalk, 100", 1, 790),
        ],
    },
];

/// The order the printed `curl` places (no quote characters, for the shell).
pub(crate) const CURL_SAMPLE: Sample = Sample {
    customer: ("Alan Turing", "alan@example.com"),
    billing: SampleAddress {
        street: "Kings Parade 1",
        zip: "CB2 1ST",
        city: "Cambridge",
        country: "GB",
    },
    shipping: SampleAddress {
        street: "Bletchley Park",
        zip: "MK3 6EB",
        city: "Milton Keynes",
        country: "GB",
    },
    currency: "GBP",
    lines: &[("TEA-EARL-250", "Earl Grey, 250 g", 2, 675)],
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_samples_vary_customers_addresses_and_lines() {
        let customers: BTreeSet<&str> = SAMPLES.iter().map(|s| s.customer.0).collect();
        assert_eq!(customers.len(), SAMPLES.len());
        for sample in SAMPLES.iter().chain([&CURL_SAMPLE]) {
            assert_ne!(sample.billing.street, sample.shipping.street);
            assert!(!sample.lines.is_empty());
        }
        assert!(SAMPLES.iter().all(|s| s.lines.len() >= 2));
        let curl = serde_json::to_string(&CURL_SAMPLE.request()).expect("json");
        assert!(!curl.contains('\''), "{curl}");
    }
}
