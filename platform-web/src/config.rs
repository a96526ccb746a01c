//! The HTTP settings of a service that serves HTTP, declared once like
//! every other group of settings ([`platform::config`]).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use platform::config::{at_least_one, millis};

use crate::http::HttpLimits;
use crate::web::security::{AllowedHosts, parse_hosts};

/// Where and how the HTTP API serves.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Where the HTTP API listens (port 0 picks a free port).
    #[arg(
        id = "http_addr",
        long = "http-addr",
        env = "HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// A request taking longer, body included, is answered 408.
    #[arg(
        id = "http_request_timeout",
        long = "http-request-timeout-ms",
        env = "HTTP_REQUEST_TIMEOUT_MS",
        default_value = "10000",
        value_parser = millis
    )]
    pub request_timeout: Duration,
    /// Requests handled at once; the rest wait for a slot (GET /health/live needs none).
    #[arg(
        id = "http_max_concurrent_requests",
        long = "http-max-concurrent-requests",
        env = "HTTP_MAX_CONCURRENT_REQUESTS",
        default_value_t = 512,
        value_parser = at_least_one
    )]
    pub max_concurrent_requests: usize,
    /// How long a request waits for a slot; then it is answered 503 with Retry-After, nothing done.
    #[arg(
        id = "http_queue_timeout",
        long = "http-queue-timeout-ms",
        env = "HTTP_QUEUE_TIMEOUT_MS",
        default_value = "1000",
        value_parser = millis
    )]
    pub queue_timeout: Duration,
    /// The Host values (host[:port], comma-separated) the service answers to; any other gets 421, and only pages of these hosts may send it unsafe requests (unset: localhost, 127.0.0.1 and [::1] at the port it listens on, and its own address if specific)
    #[arg(
        id = "allowed_hosts",
        long = "allowed-hosts",
        env = "ALLOWED_HOSTS",
        value_parser = parse_hosts
    )]
    pub allowed_hosts: Option<AllowedHosts>,
}

impl HttpSettings {
    /// The limits the common layers apply.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            request_timeout: self.request_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            queue_timeout: self.queue_timeout,
        }
    }

    /// The hosts the service answers to once it listens on `bound` (the
    /// real address, port 0 resolved): the setting, else [`AllowedHosts::local`].
    pub fn allowed_hosts(&self, bound: SocketAddr) -> AllowedHosts {
        self.allowed_hosts
            .clone()
            .unwrap_or_else(|| AllowedHosts::local(bound))
    }
}

#[cfg(test)]
mod tests {
    use clap::{Command, Parser};
    use platform::config::{DbSettings, command, defaults, secs, variables};
    use platform::services::INVOICING_SERVICE;

    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        #[command(flatten)]
        http: HttpSettings,
        #[command(flatten)]
        database: DbSettings,
        /// A knob of the example.
        #[arg(long, env = "EXAMPLE_KNOB", default_value = "5", value_parser = secs)]
        knob: Duration,
    }

    fn example() -> Command {
        command::<Example>(&INVOICING_SERVICE, &[("db_max_connections", "4")])
    }

    #[test]
    fn a_service_gets_its_own_defaults_and_nothing_from_the_environment() {
        let defaults: Example = defaults(example()).unwrap();
        assert_eq!(defaults.http.addr.to_string(), "127.0.0.1:8082");
        assert_eq!(
            defaults.database.url.expose(),
            "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing"
        );
        assert_eq!(defaults.database.max_connections, 4);
        assert_eq!(defaults.knob, Duration::from_secs(5));
        assert_eq!(defaults.http.request_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_value_names_its_variable_or_flag() {
        let error = example()
            .try_get_matches_from(["invoicing-service", "--http-request-timeout-ms", "soon"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("http-request-timeout-ms"), "{error}");
        assert!(error.contains("not a whole number"), "{error}");
    }

    #[test]
    fn every_variable_is_listed_with_its_default_and_help() {
        let variables = variables(&example());
        let names: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "HTTP_ADDR",
                "HTTP_REQUEST_TIMEOUT_MS",
                "HTTP_MAX_CONCURRENT_REQUESTS",
                "HTTP_QUEUE_TIMEOUT_MS",
                "ALLOWED_HOSTS",
                "DATABASE_URL",
                "DB_MAX_CONNECTIONS",
                "DB_MIN_CONNECTIONS",
                "DB_ACQUIRE_TIMEOUT_MS",
                "EXAMPLE_KNOB"
            ]
        );
        assert_eq!(variables[0].default.as_deref(), Some("127.0.0.1:8082"));
        assert_eq!(variables[9].help, "A knob of the example");
    }
}
