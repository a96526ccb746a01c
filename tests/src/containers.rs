//! Infrastructure from Docker, for machines that have an engine.
//!
//! The end-to-end tests choose their infrastructure in this order
//! ([`TestInfra::acquire`](crate::TestInfra::acquire), the one way every test
//! and helper gets it):
//!
//! 1. the environment names Kafka and PostgreSQL (what `cargo xtask test`
//!    does): use them;
//! 2. otherwise, a Docker engine answers where testcontainers looks for one
//!    ([`docker_engine`], asked once per binary: `~/.testcontainers.properties`,
//!    `DOCKER_HOST`, `/var/run/docker.sock`, the rootless and Docker Desktop
//!    sockets): start an `apache/kafka` and a `postgres` container, at the
//!    versions docker-compose.yml pins, once per test binary, and run the same
//!    tests;
//! 3. otherwise: fail with one line saying how to get infrastructure and why
//!    Docker was not used.
//!
//! The containers run what the native infrastructure runs: the broker gets
//! [`devinfra::kafka::single_node_image_env`] (no topic auto-creation, no initial
//! rebalance delay, an explicit node id), PostgreSQL the native
//! `max_connections`, with `fsync` off because test data need not survive a
//! power cut.
//!
//! testcontainers-rs removes a container only when its handle is dropped, and
//! a handle held for the whole test binary lives in a static, which Rust never
//! drops. So the handles sit in a holder, and an `atexit` hook removes them
//! (and their anonymous volumes) when the test binary exits, whether its tests
//! passed or failed, on a thread and an async runtime of its own (the tests'
//! runtimes are gone by then); testcontainers' watchdog removes them on
//! Ctrl-C or SIGTERM. Only a SIGKILL leaves them behind, each labelled [`LABEL`] so one
//! command finds them (see the README).

use platform::services;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::core::client::docker_client_instance;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ContainerRequest, Image, ImageExt};
use tokio::sync::OnceCell;

use crate::{KAFKA_BOOTSTRAP_SERVERS, POSTGRES_ADMIN_URL, TestInfra};

/// The Kafka image and tag, as in docker-compose.yml.
pub const KAFKA_IMAGE: (&str, &str) = ("apache/kafka", "4.4.0");
/// The PostgreSQL image and tag, as in docker-compose.yml.
pub const POSTGRES_IMAGE: (&str, &str) = ("postgres", "15.10-bookworm");

/// The label on every container these tests start; its value is the test
/// binary's process id.
pub const LABEL: &str = "order-flow.e2e.pid";

/// How long the Docker engine may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a container may take to become ready once created (a cold JVM on
/// a busy two-core machine is slow; testcontainers' default is 60 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// How long removing the containers may hold up the test binary's exit.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no Docker engine is used, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoDocker(String);

impl NoDocker {
    /// The reason, made one line.
    pub fn from_reason(reason: &str) -> Self {
        NoDocker(reason.replace('\n', " "))
    }
}

/// Where a test run's infrastructure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The environment names it (`cargo xtask test`).
    Environment,
    /// Containers started by this test binary.
    Docker,
    /// Nowhere: the tests fail, saying how to get it and why Docker was not used.
    Missing(NoDocker),
}

/// Chooses the infrastructure: the environment's if it names Kafka and
/// PostgreSQL (then `docker` is never polled), else Docker's if `docker`
/// finds an engine, else none.
pub async fn choose(
    lookup: impl Fn(&str) -> Option<String>,
    docker: impl Future<Output = Result<(), NoDocker>>,
) -> Source {
    let named = |name| lookup(name).is_some_and(|v| !v.trim().is_empty());
    if named(KAFKA_BOOTSTRAP_SERVERS) && named(POSTGRES_ADMIN_URL) {
        return Source::Environment;
    }
    match docker.await {
        Ok(()) => Source::Docker,
        Err(why) => Source::Missing(why),
    }
}

/// Whether the Docker engine testcontainers would use answers a ping.
///
/// The engine is found by testcontainers itself, so these tests look exactly
/// where the containers would be started: `tc.host` in
/// `~/.testcontainers.properties`, `DOCKER_HOST`, `docker.host` in the
/// properties file, `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/.docker/run/docker.sock`,
/// `~/.docker/run/docker.sock` and `~/.docker/desktop/docker.sock`. A Docker
/// client without an engine, as on the CI machines, answers with the reason.
pub async fn docker_engine() -> Result<(), NoDocker> {
    let docker = docker_client_instance()
        .await
        .map_err(|e| NoDocker(one_line(&e)))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(NoDocker(format!(
            "no Docker engine answered: {}",
            one_line(&e)
        ))),
        Err(_) => Err(NoDocker(format!(
            "the Docker engine did not answer within {}s",
            PING_TIMEOUT.as_secs()
        ))),
    }
}

/// [`docker_engine`], asked once per test binary. The answer does not change
/// during a run, and asking again would share one Docker client between the
/// tests' short-lived runtimes: a request can then be lost to a runtime that
/// shuts down under it, and a test would see Docker vanish.
pub async fn docker_engine_once() -> Result<(), NoDocker> {
    static ANSWER: OnceCell<Result<(), NoDocker>> = OnceCell::const_new();
    ANSWER.get_or_init(docker_engine).await.clone()
}

/// An error and its causes on one line.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    platform::error::chain(error).replace('\n', " ")
}

/// The infrastructure of this test binary's containers, started on first use
/// and removed when the binary exits. A failed start is remembered, so every
/// test reports it instead of trying again.
pub async fn shared() -> Result<TestInfra, String> {
    static STARTED: OnceCell<Result<TestInfra, String>> = OnceCell::const_new();
    STARTED
        .get_or_init(|| async { start().await.map_err(|e| format!("{e:#}")) })
        .await
        .clone()
}

/// The client listeners of the testcontainers Kafka module: `BROKER`
/// between brokers (the first), `PLAINTEXT` for the tests (a name only:
/// [`kafka_request`] makes both authenticate).
pub const MODULE_LISTENERS: [&str; 2] = ["BROKER", "PLAINTEXT"];

/// The broker container: the compose image and the native broker settings,
/// authentication and authorisation included.
pub fn kafka_request() -> ContainerRequest<Kafka> {
    let module = Kafka::default().with_jvm_image();
    // The module sets its listeners and a few settings of its own; a variable
    // it already sets to the same value is not set twice, and one it sets
    // otherwise (the listeners' security protocols) is set again, after it:
    // the engine keeps the last value of a variable.
    let already: Vec<(String, String)> = ContainerRequest::from(module.clone())
        .env_vars()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut request = module
        .with_tag(KAFKA_IMAGE.1)
        .with_label(LABEL, std::process::id().to_string())
        .with_startup_timeout(STARTUP_TIMEOUT);
    for (name, value) in devinfra::kafka::single_node_image_env(&MODULE_LISTENERS) {
        if !already.contains(&(name.clone(), value.clone())) {
            request = request.with_env_var(name, value);
        }
    }
    request
}

/// The PostgreSQL container: the compose image, the service roles and
/// databases of `infra/postgres/init.sql`, and the native `max_connections`.
pub fn postgres_request() -> ContainerRequest<Postgres> {
    Postgres::default()
        .with_init_sql(include_bytes!("../../infra/postgres/init.sql").to_vec())
        .with_tag(POSTGRES_IMAGE.1)
        .with_label(LABEL, std::process::id().to_string())
        .with_startup_timeout(STARTUP_TIMEOUT)
        // Replaces the module's command (only `-c fsync=off`); the image's
        // entrypoint runs `postgres` with arguments that start with '-'.
        .with_cmd(postgres_args())
}

/// The `postgres` server arguments of the test container.
fn postgres_args() -> Vec<String> {
    [
        format!("max_connections={}", devinfra::postgres::MAX_CONNECTIONS),
        "fsync=off".to_owned(),
    ]
    .into_iter()
    .flat_map(|setting| ["-c".to_owned(), setting])
    .collect()
}

/// Removes one container, on the runtime that polls it.
type Removal = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A container this binary started, held until the binary exits.
struct Running {
    id: String,
    remove: Box<dyn FnOnce() -> Removal + Send>,
}

impl Running {
    /// Holds `container`; removing it is `docker rm -f -v` (its anonymous
    /// volumes too: both images declare data volumes).
    fn container<I: Image + 'static>(container: ContainerAsync<I>) -> Self {
        Running {
            id: container.id().to_owned(),
            remove: Box::new(move || {
                Box::pin(async move { container.rm().await.map_err(|e| one_line(&e)) })
            }),
        }
    }
}

/// The containers [`remove_at_exit`] removes.
static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

/// Keeps `container` running until the test binary exits, then removes it.
fn keep_until_exit(container: Running) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `remove_at_exit` is an `extern "C" fn()` that never unwinds
        // (it catches panics), as atexit requires.
        let status = unsafe { libc::atexit(remove_at_exit) };
        if status != 0 {
            eprintln!(
                "e2e: cannot register the container clean-up; remove the containers with \
                 `docker rm -f -v $(docker ps -aq --filter label={LABEL})`"
            );
        }
    });
    RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(container);
}

/// Runs when the test binary exits (libtest returns from `main` or calls
/// `exit` after failures): removes every container it started.
extern "C" fn remove_at_exit() {
    // A panic must not unwind into the C library's exit(). The work runs on a
    // thread of its own: by now the C library may have run this thread's
    // thread-local destructors, which the async runtime relies on.
    let _ = std::panic::catch_unwind(|| {
        let removal = std::thread::Builder::new()
            .name("e2e-container-removal".into())
            .spawn(remove_running);
        match removal {
            Ok(thread) => {
                let _ = thread.join();
            }
            Err(e) => eprintln!(
                "e2e: cannot remove the test containers ({e}); remove them with \
                 `docker rm -f -v $(docker ps -aq --filter label={LABEL})`"
            ),
        }
    });
}

fn remove_running() {
    let running = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(PoisonError::into_inner));
    if running.is_empty() {
        return;
    }
    let ids: Vec<&str> = running.iter().map(|r| r.id.as_str()).collect();
    let manual = format!("remove them with `docker rm -f -v {}`", ids.join(" "));
    // The runtimes the tests ran on are gone by now; this one lives until the
    // removal is done. Connections pooled by those runtimes were closed with
    // them, so the Docker client opens new ones here.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e: cannot remove the test containers ({e}); {manual}");
            return;
        }
    };
    runtime.block_on(async {
        let mut removals =
            Box::pin(futures::future::join_all(running.into_iter().map(|r| (r.remove)())));
        match tokio::time::timeout(REMOVE_TIMEOUT, &mut removals).await {
            Ok(results) => {
                let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
                if !failed.is_empty() {
                    eprintln!(
                        "e2e: removing the test containers failed ({}); {manual}",
                        failed.join("; ")
                    );
                }
            }
            Err(_) => {
                // Dropping the unfinished removal would drop the container
                // handles, whose Drop blocks on another removal: leave them.
                std::mem::forget(removals);
                eprintln!(
                    "e2e: the Docker engine did not remove the test containers within {}s; {manual}",
                    REMOVE_TIMEOUT.as_secs()
                );
            }
        }
    });
}

async fn start() -> anyhow::Result<TestInfra> {
    use anyhow::Context as _;

    let postgres = postgres_request()
        .start()
        .await
        .context("starting the postgres container")?;
    let pg_port = postgres.get_host_port_ipv4(5432).await;
    keep_until_exit(Running::container(postgres));
    let kafka = kafka_request()
        .start()
        .await
        .context("starting the apache/kafka container")?;
    let kafka_port = kafka.get_host_port_ipv4(KAFKA_PORT).await;
    keep_until_exit(Running::container(kafka));
    let (pg_port, kafka_port) = (pg_port?, kafka_port?);

    // The Kafka module advertises 127.0.0.1 with the published port, so the
    // engine must publish on this machine: a local engine, rootless Docker
    // or Docker Desktop, not a remote DOCKER_HOST.
    let url = |role: &str, password: &str, db: &str| {
        format!("postgres://{role}:{password}@127.0.0.1:{pg_port}/{db}")
    };
    let bootstrap = format!("127.0.0.1:{kafka_port}");
    let admin = url("postgres", "postgres", "postgres");
    let services: Vec<(String, String)> = services::ALL
        .iter()
        .map(|r| (r.database_url_var(), url(r.role(), r.role(), r.role())))
        .collect();
    Ok(TestInfra::from_lookup(|name| match name {
        KAFKA_BOOTSTRAP_SERVERS => Some(bootstrap.clone()),
        POSTGRES_ADMIN_URL => Some(admin.clone()),
        other => services
            .iter()
            .find(|(var, _)| var == other)
            .map(|(_, url)| url.clone()),
    })?)
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

    #[tokio::test]
    async fn the_environment_wins_and_docker_is_not_even_asked() {
        let given = env(&[
            (KAFKA_BOOTSTRAP_SERVERS, "127.0.0.1:19092"),
            (
                POSTGRES_ADMIN_URL,
                "postgres://postgres:postgres@127.0.0.1:15432/postgres",
            ),
        ]);
        let docker = async { panic!("docker must not be probed") };
        assert_eq!(choose(given, docker).await, Source::Environment);
    }

    #[tokio::test]
    async fn docker_is_used_only_when_the_environment_names_nothing() {
        assert_eq!(choose(env(&[]), async { Ok(()) }).await, Source::Docker);
        let half = env(&[(KAFKA_BOOTSTRAP_SERVERS, "127.0.0.1:19092")]);
        assert_eq!(choose(half, async { Ok(()) }).await, Source::Docker);
        let blank = env(&[(KAFKA_BOOTSTRAP_SERVERS, " "), (POSTGRES_ADMIN_URL, "")]);
        assert_eq!(choose(blank, async { Ok(()) }).await, Source::Docker);
    }

    #[tokio::test]
    async fn without_either_the_tests_have_nothing_and_say_why() {
        let why = NoDocker("no Docker engine answered".into());
        let nothing = async { Err(NoDocker("no Docker engine answered".into())) };
        assert_eq!(choose(env(&[]), nothing).await, Source::Missing(why));
    }

    fn env_of<I: testcontainers_modules::testcontainers::Image>(
        request: &ContainerRequest<I>,
    ) -> Vec<(String, String)> {
        request
            .env_vars()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn the_test_broker_runs_the_native_broker_settings() {
        let request = kafka_request();
        let env = env_of(&request);
        let module = env_of(&ContainerRequest::from(Kafka::default()));
        for (name, value) in devinfra::kafka::single_node_image_env(&MODULE_LISTENERS) {
            let set: Vec<&String> = env
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(
                set.last(),
                Some(&&value),
                "{name} in the test broker's environment"
            );
            let by_module = module.iter().any(|(n, v)| *n == name && *v != value);
            assert_eq!(
                set.len(),
                1 + usize::from(by_module),
                "{name} is set once more only where the module sets it otherwise: {set:?}"
            );
        }
        assert!(
            env.iter()
                .any(|(n, v)| n == "KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND" && v == "false")
        );
        assert_eq!(
            request.descriptor(),
            format!("{}:{}", KAFKA_IMAGE.0, KAFKA_IMAGE.1)
        );
    }

    #[test]
    fn the_test_postgres_allows_the_native_connections_without_fsync() {
        let request = postgres_request();
        let args: Vec<String> = request.cmd().map(|a| a.into_owned()).collect();
        let max = format!("max_connections={}", devinfra::postgres::MAX_CONNECTIONS);
        for setting in [max.as_str(), "fsync=off"] {
            assert!(
                args.windows(2).any(|w| w[0] == "-c" && w[1] == setting),
                "-c {setting} missing from {args:?}"
            );
        }
        assert_eq!(
            request.descriptor(),
            format!("{}:{}", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1)
        );
    }

    #[test]
    fn every_container_is_labelled_with_this_process() {
        let pid = std::process::id().to_string();
        assert_eq!(kafka_request().labels().get(LABEL), Some(&pid));
        assert_eq!(postgres_request().labels().get(LABEL), Some(&pid));
    }

    /// Set in the child process of [`docker_is_found_where_testcontainers_looks`]:
    /// what its probe must find, `answer` or `nothing`.
    const PROBE_CHILD: &str = "E2E_DOCKER_PROBE_EXPECT";

    /// A Docker engine that answers `/_ping` on a unix socket and records the
    /// request lines it was sent, until [`FakeEngine::stop`].
    struct FakeEngine {
        socket: std::path::PathBuf,
        requests: std::sync::Arc<Mutex<Vec<String>>>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    }

    impl FakeEngine {
        fn start(socket: std::path::PathBuf) -> Self {
            use std::io::{BufRead as _, BufReader, Write as _};
            use std::sync::atomic::Ordering;

            let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
            let requests = std::sync::Arc::new(Mutex::new(Vec::new()));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (seen, stopped) = (requests.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(&stream);
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    // The headers, up to the blank line.
                    let mut header = String::new();
                    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                        header.clear();
                    }
                    seen.lock().expect("not poisoned").push(request_line);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
                          Api-Version: 1.47\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                    );
                }
            });
            FakeEngine {
                socket,
                requests,
                stop,
                thread,
            }
        }

        /// The request lines received so far.
        fn requests(&self) -> Vec<String> {
            self.requests.lock().expect("not poisoned").clone()
        }

        fn stop(self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            // Wakes the accept loop, which then sees the flag.
            let _ = std::os::unix::net::UnixStream::connect(&self.socket);
            self.thread.join().expect("the fake engine's thread");
        }
    }

    /// Runs this test again in a child process with `env` (HOME, DOCKER_HOST)
    /// and returns whether it passed: the child only probes, as
    /// [`TestInfra::acquire`] would.
    fn probe_in_child(expect: &str, home: &std::path::Path, docker_host: Option<&str>) -> bool {
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
        child
            .args([
                "--exact",
                "containers::tests::docker_is_found_where_testcontainers_looks",
                "--test-threads=1",
            ])
            .env(PROBE_CHILD, expect)
            .env("HOME", home)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_HOST")
            .env_remove("TESTCONTAINERS_COMMAND");
        if let Some(host) = docker_host {
            child.env("DOCKER_HOST", host);
        }
        let output = child.output().expect("the test binary runs");
        if !output.status.success() {
            eprintln!(
                "child probe ({expect}) failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        output.status.success()
    }

    /// Docker is found where testcontainers finds it, since testcontainers
    /// itself looks: `tc.host` in `~/.testcontainers.properties` (which needs
    /// the `properties-config` feature) and `DOCKER_HOST` reach a fake engine;
    /// a socket nobody listens on is reported, with its path.
    #[test]
    fn docker_is_found_where_testcontainers_looks() {
        if let Some(expect) = std::env::var_os(PROBE_CHILD) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let found = runtime.block_on(docker_engine());
            match expect.to_str() {
                Some("answer") => assert_eq!(found, Ok(())),
                _ => {
                    let why = found.expect_err("no engine");
                    assert!(why.0.contains("absent.sock"), "{why}");
                    assert_eq!(why.0.lines().count(), 1, "{why}");
                }
            }
            return;
        }

        let dir =
            std::env::temp_dir().join(format!("e2e-docker-{}", uuid::Uuid::new_v4().simple()));
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("a fake home");
        let engine = FakeEngine::start(dir.join("docker.sock"));
        let host = format!("unix://{}", engine.socket.display());

        std::fs::write(
            home.join(".testcontainers.properties"),
            format!("tc.host={host}\n"),
        )
        .expect("properties file");
        assert!(
            probe_in_child("answer", &home, None),
            "tc.host in ~/.testcontainers.properties"
        );
        assert_eq!(engine.requests().len(), 1, "{:?}", engine.requests());

        std::fs::remove_file(home.join(".testcontainers.properties")).expect("remove");
        assert!(probe_in_child("answer", &home, Some(&host)), "DOCKER_HOST");
        let requests = engine.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(
            requests.iter().all(|r| r.contains("/_ping")),
            "{requests:?}"
        );

        let absent = format!("unix://{}", dir.join("absent.sock").display());
        assert!(
            probe_in_child("nothing", &home, Some(&absent)),
            "a dead socket"
        );

        engine.stop();
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Set in the child process of
    /// [`what_is_kept_until_exit_is_removed_when_the_test_binary_exits`]: the
    /// file its removal writes.
    const EXIT_MARKER: &str = "E2E_EXIT_HOOK_MARKER";
    /// Set when that child's test must fail.
    const EXIT_FAIL: &str = "E2E_EXIT_HOOK_FAIL";

    /// The mechanism that removes the containers, with a stand-in for the
    /// container: whether the test binary's tests pass or fail, what was kept
    /// is removed when it exits, on an async runtime of its own.
    #[test]
    fn what_is_kept_until_exit_is_removed_when_the_test_binary_exits() {
        if let Some(marker) = std::env::var_os(EXIT_MARKER) {
            keep_until_exit(Running {
                id: "stand-in".into(),
                remove: Box::new(move || {
                    Box::pin(async move {
                        // Needs a runtime, as the Docker client does.
                        tokio::fs::write(&marker, "removed")
                            .await
                            .map_err(|e| e.to_string())
                    })
                }),
            });
            assert!(
                std::env::var_os(EXIT_FAIL).is_none(),
                "failing on purpose: the removal must run all the same"
            );
            return;
        }

        let dir = std::env::temp_dir().join(format!("e2e-exit-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        for fail in [false, true] {
            let marker = dir.join(format!("removed-{fail}"));
            let mut child =
                std::process::Command::new(std::env::current_exe().expect("test binary"));
            child
                .args([
                    "--exact",
                    "containers::tests::what_is_kept_until_exit_is_removed_when_the_test_binary_exits",
                    "--test-threads=1",
                ])
                .env(EXIT_MARKER, &marker);
            if fail {
                child.env(EXIT_FAIL, "1");
            }
            let output = child.output().expect("the test binary runs");
            assert_eq!(
                output.status.success(),
                !fail,
                "{}",
                String::from_utf8_lossy(&output.stdout)
            );
            assert_eq!(
                std::fs::read_to_string(&marker).ok().as_deref(),
                Some("removed"),
                "nothing was removed at exit (tests failed: {fail})"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_error_and_its_causes_fit_on_one_line() {
        let inner = std::io::Error::other("Socket not found: /var/run/docker.sock");
        let outer = anyhow::Error::new(inner).context("failed to initialize a docker client");
        let line = one_line(outer.as_ref());
        assert_eq!(
            line,
            "failed to initialize a docker client: Socket not found: /var/run/docker.sock"
        );
    }
}
