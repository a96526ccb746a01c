//! The command line each registered service declares, for the checks that
//! compare deployments (docker-compose.yml, the Helm chart, the README's
//! configuration table) with the code.
//!
//! Every consumer declares the consumer kit's settings with its own
//! defaults from its registry entry ([`consumer_kit::cli`]), so a new
//! consumer needs no line here; order-service declares its own.

use platform::services::{self, ServiceFacts};

/// `service`'s command line: every setting it reads, declared once.
pub fn command(service: &ServiceFacts) -> clap::Command {
    match service.name {
        "order-service" => order_service::Config::cli(),
        _ => consumer_kit::cli(service, service.summary),
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
