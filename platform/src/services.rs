//! The registry of the flow's services: for each, its name, the port it
//! listens on by default, its database and role, its consumer group, and what
//! its pages are called.
//!
//! [`ALL`] is the one list of services. The services take their defaults from
//! here, and everything that runs or checks them reads the same table: the
//! dev tool (databases, roles, Kafka principals and ACLs, `cargo xtask up`),
//! the end-to-end tests, the chaos and benchmark runs, the page links and
//! navigation, and the drift checks against docker-compose.yml, the Helm
//! chart and the README. A new consumer is one more entry in [`ALL`]; the
//! names of its settings (`<NAME>_URL`, `<DATABASE>_DATABASE_URL`, ...)
//! follow from the entry.

/// What is fixed about one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceFacts {
    /// The crate, binary and compose service name, e.g. `order-service`.
    pub name: &'static str,
    /// The short name used on command lines, e.g. `order`.
    pub short: &'static str,
    /// The port it listens on by default (on 127.0.0.1; published by compose).
    pub port: u16,
    /// Its own database, owned by the login role of the same name.
    pub database: &'static str,
    /// Its consumer group on the orders topic, if it consumes it.
    pub consumer_group: Option<&'static str>,
    /// What its list page is called in every page's navigation, e.g. `Invoices`.
    pub label: &'static str,
    /// The path of the collection its API lists, e.g. `/invoices`.
    pub collection: &'static str,
    /// One sentence on what it does, for the overview page.
    pub summary: &'static str,
}

impl ServiceFacts {
    /// The login role: named like its database.
    pub fn role(&self) -> &'static str {
        self.database
    }

    /// Whether it consumes the orders topic (it has a consumer group).
    pub fn consumes_orders(&self) -> bool {
        self.consumer_group.is_some()
    }

    /// Its database on the local infrastructure (`cargo xtask infra up`),
    /// with the local development password (the role's name).
    pub fn local_database_url(&self) -> String {
        format!(
            "postgres://{role}:{role}@127.0.0.1:{LOCAL_POSTGRES_PORT}/{database}",
            role = self.role(),
            database = self.database
        )
    }

    /// `http://127.0.0.1:<port>`: where `cargo xtask up` and docker-compose
    /// publish it.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variable holding its database URL for the tools and tests, from
    /// its database: `ORDERS_DATABASE_URL`, `INVOICING_DATABASE_URL`, ...
    pub fn database_url_var(&self) -> String {
        database_url_var(self.database)
    }

    /// The prefix of its own variables, from its name: `ORDER_SERVICE`, ...
    pub fn var_prefix(&self) -> String {
        self.name.to_ascii_uppercase().replace('-', "_")
    }

    /// The variable where a browser reaches its pages: `ORDER_SERVICE_URL`, ...
    pub fn url_var(&self) -> String {
        format!("{}_URL", self.var_prefix())
    }

    /// The command-line flag of [`url_var`](Self::url_var): `order-service-url`, ...
    pub fn url_flag(&self) -> String {
        format!("{}-url", self.name)
    }

    /// The variable that overrides its port in `cargo xtask up`: `ORDER_SERVICE_PORT`, ...
    pub fn port_var(&self) -> String {
        format!("{}_PORT", self.var_prefix())
    }
}

impl std::fmt::Display for ServiceFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The variable holding the URL of `database`: `<DATABASE>_DATABASE_URL`.
pub fn database_url_var(database: &str) -> String {
    format!("{}_DATABASE_URL", database.to_ascii_uppercase())
}

/// The port of the local PostgreSQL (`cargo xtask infra up`).
pub const LOCAL_POSTGRES_PORT: u16 = 15432;

/// The first Kafka node's client port on the local infrastructure.
pub const LOCAL_KAFKA_PORT: u16 = 19092;

/// The order service: HTTP API for orders, the outbox and its relay.
pub const ORDER_SERVICE: ServiceFacts = ServiceFacts {
    name: "order-service",
    short: "order",
    port: 8081,
    database: "orders",
    consumer_group: None,
    label: "Orders",
    collection: "/orders",
    summary: "Takes orders, writes each with its event in one transaction; its relay publishes them.",
};

/// The invoicing service: bills placed orders.
pub const INVOICING_SERVICE: ServiceFacts = ServiceFacts {
    name: "invoicing-service",
    short: "invoicing",
    port: 8082,
    database: "invoicing",
    consumer_group: Some("invoicing"),
    label: "Invoices",
    collection: "/invoices",
    summary: "Issues one invoice per order: billing address, prices, totals.",
};

/// The shipping service: ships placed orders, never sees a price.
pub const SHIPPING_SERVICE: ServiceFacts = ServiceFacts {
    name: "shipping-service",
    short: "shipping",
    port: 8083,
    database: "shipping",
    consumer_group: Some("shipping"),
    label: "Shipments",
    collection: "/shipments",
    summary: "Creates one shipment per order: recipient, address, what to pack. No prices.",
};

/// Every service, in the order of the flow: order-service first, then the
/// consumers. The one list of services; add a consumer here.
pub const ALL: &[ServiceFacts] = &[ORDER_SERVICE, INVOICING_SERVICE, SHIPPING_SERVICE];

/// The services that consume the orders topic, in the order of the flow.
pub fn consumers() -> impl Iterator<Item = &'static ServiceFacts> {
    ALL.iter().filter(|service| service.consumes_orders())
}

/// The service called `name`: its name (`order-service`), short name
/// (`order`) or database (`orders`), in any case.
pub fn find(name: &str) -> Option<&'static ServiceFacts> {
    let name = name.trim().to_ascii_lowercase();
    ALL.iter()
        .find(|s| name == s.name || name == s.short || name == s.database)
}

/// The short names of every service, for messages: `order, invoicing or shipping`.
pub fn short_names() -> String {
    let names: Vec<&str> = ALL.iter().map(|s| s.short).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_databases_are_distinct() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.short, b.short);
                assert_ne!(a.port, b.port);
                assert_ne!(a.database, b.database);
                assert_ne!(a.label, b.label);
                assert_ne!(a.collection, b.collection);
                assert!(a.consumer_group.is_none() || a.consumer_group != b.consumer_group);
            }
        }
        assert_eq!(
            ORDER_SERVICE.local_database_url(),
            "postgres://orders:orders@127.0.0.1:15432/orders"
        );
    }

    #[test]
    fn order_service_comes_first_and_alone_produces() {
        assert_eq!(ALL[0], ORDER_SERVICE);
        assert!(consumers().all(|s| s.name != ORDER_SERVICE.name));
        assert_eq!(consumers().count(), ALL.len() - 1);
    }

    #[test]
    fn variable_names_follow_from_the_entry() {
        assert_eq!(ORDER_SERVICE.database_url_var(), "ORDERS_DATABASE_URL");
        assert_eq!(
            INVOICING_SERVICE.database_url_var(),
            "INVOICING_DATABASE_URL"
        );
        assert_eq!(SHIPPING_SERVICE.url_var(), "SHIPPING_SERVICE_URL");
        assert_eq!(SHIPPING_SERVICE.url_flag(), "shipping-service-url");
        assert_eq!(ORDER_SERVICE.port_var(), "ORDER_SERVICE_PORT");
        assert_eq!(SHIPPING_SERVICE.local_url(), "http://127.0.0.1:8083");
    }

    #[test]
    fn services_are_found_by_any_of_their_names() {
        assert_eq!(find("Invoicing"), Some(&INVOICING_SERVICE));
        assert_eq!(find("orders"), Some(&ORDER_SERVICE));
        assert_eq!(find("shipping-service"), Some(&SHIPPING_SERVICE));
        assert_eq!(find("billing"), None);
        assert_eq!(short_names(), "order, invoicing or shipping");
    }
}
