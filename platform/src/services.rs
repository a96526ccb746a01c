//! The facts about each service of the flow, in one place: its name, the
//! port it listens on by default, its database and role, its consumer group.
//!
//! The services take their defaults from here, and everything that runs or
//! checks them (the dev tool's stack, the end-to-end tests, the chaos and
//! benchmark runs, the docker-compose drift checks) reads the same table.

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
}

impl ServiceFacts {
    /// The login role: named like its database.
    pub fn role(&self) -> &'static str {
        self.database
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
};

/// The invoicing service: bills placed orders.
pub const INVOICING_SERVICE: ServiceFacts = ServiceFacts {
    name: "invoicing-service",
    short: "invoicing",
    port: 8082,
    database: "invoicing",
    consumer_group: Some("invoicing"),
};

/// The shipping service: ships placed orders, never sees a price.
pub const SHIPPING_SERVICE: ServiceFacts = ServiceFacts {
    name: "shipping-service",
    short: "shipping",
    port: 8083,
    database: "shipping",
    consumer_group: Some("shipping"),
};

/// Every service, in the order of the flow.
pub const ALL: [ServiceFacts; 3] = [ORDER_SERVICE, INVOICING_SERVICE, SHIPPING_SERVICE];

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
            }
        }
        assert_eq!(
            ORDER_SERVICE.local_database_url(),
            "postgres://orders:orders@127.0.0.1:15432/orders"
        );
    }
}
