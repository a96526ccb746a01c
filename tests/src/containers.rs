//! Infrastructure from Docker, for machines that have an engine.
//!
//! The end-to-end tests choose their infrastructure in this order:
//!
//! 1. the environment names Kafka and PostgreSQL (what `cargo xtask test`
//!    does): use them;
//! 2. otherwise, a Docker engine answers: start an `apache/kafka` and a
//!    `postgres` container with testcontainers, at the versions
//!    docker-compose.yml pins, once per test binary, and run the same tests;
//! 3. otherwise: fail with one line saying how to get infrastructure.
//!
//! [`choose`] is that decision, kept pure so a unit test covers it; the drift
//! tests keep [`KAFKA_IMAGE`] and [`POSTGRES_IMAGE`] equal to the compose file's.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::OnceCell;

use crate::{KAFKA_BOOTSTRAP_SERVERS, POSTGRES_ADMIN_URL, ServiceRole, TestInfra};

/// The Kafka image and tag, as in docker-compose.yml.
pub const KAFKA_IMAGE: (&str, &str) = ("apache/kafka", "4.4.0");
/// The PostgreSQL image and tag, as in docker-compose.yml.
pub const POSTGRES_IMAGE: (&str, &str) = ("postgres", "15.10-bookworm");

/// Where a test run's infrastructure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The environment names it (`cargo xtask test`).
    Environment,
    /// Containers started by this test binary.
    Docker,
    /// Nowhere: the tests fail, saying how to get it.
    Missing,
}

/// Chooses the infrastructure: the environment's if it names Kafka and
/// PostgreSQL, else Docker's if an engine answers, else none.
pub fn choose(
    lookup: impl Fn(&str) -> Option<String>,
    docker_answers: impl FnOnce() -> bool,
) -> Source {
    let named = |name| lookup(name).is_some_and(|v| !v.trim().is_empty());
    if named(KAFKA_BOOTSTRAP_SERVERS) && named(POSTGRES_ADMIN_URL) {
        Source::Environment
    } else if docker_answers() {
        Source::Docker
    } else {
        Source::Missing
    }
}

/// True when a Docker engine answers `GET /_ping` on its socket within 2 s
/// (`DOCKER_HOST=unix://...` or the default `/var/run/docker.sock`). A
/// Docker client without an engine, as on these CI machines, answers false.
pub fn docker_answers() -> bool {
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) => match host.strip_prefix("unix://") {
            Some(path) => path.to_owned(),
            // A TCP engine: let testcontainers try it.
            None => return !host.trim().is_empty(),
        },
        Err(_) => "/var/run/docker.sock".to_owned(),
    };
    ping(Path::new(&socket)).unwrap_or(false)
}

fn ping(socket: &Path) -> std::io::Result<bool> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut answer = [0u8; 16];
    let n = stream.read(&mut answer)?;
    Ok(answer[..n].starts_with(b"HTTP/1.") && answer[..n].windows(3).any(|w| w == b"200"))
}

struct Containers {
    _kafka: ContainerAsync<Kafka>,
    _postgres: ContainerAsync<Postgres>,
    infra: TestInfra,
}

static CONTAINERS: OnceCell<Containers> = OnceCell::const_new();

/// The infrastructure of this test binary's containers, started on first use.
pub async fn shared() -> anyhow::Result<TestInfra> {
    let containers = CONTAINERS.get_or_try_init(start).await?;
    Ok(containers.infra.clone())
}

async fn start() -> anyhow::Result<Containers> {
    let postgres = Postgres::default()
        .with_init_sql(include_bytes!("../../infra/postgres/init.sql").to_vec())
        .with_tag(POSTGRES_IMAGE.1)
        .start()
        .await
        .context("starting the postgres container")?;
    let kafka = Kafka::default()
        .with_jvm_image()
        .with_tag(KAFKA_IMAGE.1)
        .start()
        .await
        .context("starting the apache/kafka container")?;
    let pg_port = postgres.get_host_port_ipv4(5432).await?;
    let kafka_port = kafka.get_host_port_ipv4(KAFKA_PORT).await?;
    let url = |role: &str, password: &str, db: &str| {
        format!("postgres://{role}:{password}@127.0.0.1:{pg_port}/{db}")
    };
    let bootstrap = format!("127.0.0.1:{kafka_port}");
    let admin = url("postgres", "postgres", "postgres");
    let services: Vec<(String, String)> = ServiceRole::ALL
        .iter()
        .map(|r| {
            (
                r.database_url_var().to_owned(),
                url(r.name(), r.name(), r.name()),
            )
        })
        .collect();
    let infra = TestInfra::from_lookup(|name| match name {
        KAFKA_BOOTSTRAP_SERVERS => Some(bootstrap.clone()),
        POSTGRES_ADMIN_URL => Some(admin.clone()),
        other => services
            .iter()
            .find(|(var, _)| var == other)
            .map(|(_, url)| url.clone()),
    })?;
    Ok(Containers {
        _kafka: kafka,
        _postgres: postgres,
        infra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_environment_wins_and_docker_is_not_even_asked() {
        let given = env(&[
            (KAFKA_BOOTSTRAP_SERVERS, "127.0.0.1:19092"),
            (
                POSTGRES_ADMIN_URL,
                "postgres://postgres:postgres@127.0.0.1:15432/postgres",
            ),
        ]);
        assert_eq!(
            choose(given, || panic!("docker must not be probed")),
            Source::Environment
        );
    }

    #[test]
    fn docker_is_used_only_when_the_environment_names_nothing() {
        assert_eq!(choose(env(&[]), || true), Source::Docker);
        let half = env(&[(KAFKA_BOOTSTRAP_SERVERS, "127.0.0.1:19092")]);
        assert_eq!(choose(half, || true), Source::Docker);
        let blank = env(&[(KAFKA_BOOTSTRAP_SERVERS, " "), (POSTGRES_ADMIN_URL, "")]);
        assert_eq!(choose(blank, || true), Source::Docker);
    }

    #[test]
    fn without_either_the_tests_have_nothing_and_say_so() {
        assert_eq!(choose(env(&[]), || false), Source::Missing);
    }

    #[test]
    fn a_socket_nobody_listens_on_is_no_docker() {
        let path = std::env::temp_dir().join(format!("no-docker-{}.sock", uuid::Uuid::new_v4()));
        assert!(!ping(&path).unwrap_or(false));
    }
}
