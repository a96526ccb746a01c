//! The command line each registered service declares, for the checks that
//! compare deployments (docker-compose.yml, the Helm chart, the README's
//! configuration table) with the code.
//!
//! The registry ([`platform::services::ALL`]) cannot reach the services'
//! crates, so this is the one place the tests map a registered service to
//! its declaration; a new consumer adds its line here.

use platform::services::{self, ServiceFacts};

/// `service`'s command line: every setting it reads, declared once.
///
/// # Panics
/// When `service` has no line here (a registered service without its crate).
pub fn command(service: &ServiceFacts) -> clap::Command {
    match service.name {
        "order-service" => order_service::Config::cli(),
        "invoicing-service" => invoicing_service::cli(),
        "shipping-service" => shipping_service::cli(),
        other => panic!("{other} is registered but e2e::commands::command does not know it"),
    }
}

/// Every registered service with its command line, in the registry's order.
pub fn all() -> Vec<(&'static ServiceFacts, clap::Command)> {
    services::ALL
        .iter()
        .map(|service| (service, command(service)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_service_declares_its_command_line_under_its_name() {
        for (service, command) in super::all() {
            assert_eq!(command.get_name(), service.name);
        }
    }
}
