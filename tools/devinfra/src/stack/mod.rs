//! The registered services ([`platform::services::ALL`]) as plain background
//! processes, on top of the infrastructure.
//!
//! `cargo xtask up`, `demo` and `rebuild` (and the chaos and benchmark runs to
//! come) start the services one way: the binaries are built once (`cargo build
//! -p order-service -p invoicing-service ...`, one `-p` per registered service,
//! `--release` on request), then each instance is spawned detached (its own session, stdin
//! closed, output appended to `<infra dir>/services/<name>.log`) with an
//! environment made from the infra's [`Settings`] and nothing inherited that
//! could change its behaviour. Its pid and port go to `<name>.pid`, so a later
//! `cargo xtask` finds it again. A start returns once `/health/ready` answers
//! 200, and fails with the last lines of the log if the process exits first.
//!
//! A pid file alone is not proof (see [`crate::process`]): every instance
//! carries `XTASK_SERVICE_INSTANCE=<services dir>/<name>` in its environment,
//! and a pid counts as the instance only while that process runs the service's
//! binary and, where procfs shows it, has that variable. Two instances of one
//! binary, or the same binary started for another infra directory, are never
//! confused, and a recycled pid is never signalled.
//!
//! Instance 1 of a service is the one on its configured port
//! (`ORDER_SERVICE_PORT`, ..., `<NAME>_PORT` for each registered service); further instances (a second shipping consumer
//! for rebalance tests) take a free port and join the same consumer group.
//! [`Launch`] runs anything else, such as a rebuild in a new group and database.

mod build;
mod error;

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;

use orderflow_client::ApiClient;
use platform::services::{self, ORDER_SERVICE, ServiceFacts};
use shared_events::topics;

pub use build::{Binaries, Profile, build_binary, build_services};
pub use error::StackError;

use crate::infra::{ComponentStatus, DevInfra, Settings, port_from_env};
use crate::kafka::Replication;
use crate::process::{self, DirLock, PidFile, Signal};
use crate::{InfraError, Startup};
use platform::error::chain as error_chain;

/// The variable that marks a process as one instance of this stack: `<services dir>/<name>`.
pub const INSTANCE_MARKER_VAR: &str = "XTASK_SERVICE_INSTANCE";

/// How long a starting instance may take to answer `/health/ready` (migrations, topics).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopping instance may drain after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often readiness is checked while waiting.
const HEALTH_POLL: Duration = Duration::from_millis(200);

/// Variables passed on from our environment; everything else is set explicitly.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "RUST_BACKTRACE",
];

/// The first words of the line written to a log before each start.
const LOG_HEADER: &str = "=== cargo xtask: starting";

/// How many log lines an error about a failed start shows.
const TAIL_LINES: usize = 20;

/// A service of the flow: its entry in the registry ([`platform::services::ALL`]).
pub type Service = ServiceFacts;

/// The service an instance name (`shipping-service`, `shipping-service-2`, ...) belongs to.
pub fn service_of_instance(name: &str) -> Option<Service> {
    services::ALL.iter().copied().find(|s| {
        name.strip_prefix(s.name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

/// The service called `name` (`order`, `orders`, `order-service`, `invoicing`, ...).
pub fn parse_service(name: &str) -> Result<Service, StackError> {
    services::find(name).copied().ok_or_else(|| {
        StackError::config(format!(
            "unknown service {name:?}; expected {}",
            services::short_names()
        ))
    })
}

/// The name of instance `instance` (from 1) of `service`: `shipping-service`, `shipping-service-2`, ...
pub fn instance_name(service: Service, instance: u32) -> String {
    if instance <= 1 {
        service.name.to_owned()
    } else {
        format!("{}-{instance}", service.name)
    }
}

/// The ports of the services' first instances, one per registered service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePorts {
    /// (service name, port), in the registry's order.
    ports: Vec<(&'static str, u16)>,
}

impl Default for ServicePorts {
    /// Each service's own port (`order-service` 8081, ...).
    fn default() -> Self {
        ServicePorts::from_fn(|s| s.port)
    }
}

impl ServicePorts {
    /// From `ORDER_SERVICE_PORT`, `INVOICING_SERVICE_PORT`, ... (`<NAME>_PORT`).
    pub fn from_env() -> Result<Self, StackError> {
        let ports = services::ALL
            .iter()
            .map(|s| Ok((s.name, port_from_env(&s.port_var(), s.port)?)))
            .collect::<Result<_, StackError>>()?;
        Ok(ServicePorts { ports })
    }

    /// The registered services on `ports`, in the registry's order (one port each).
    pub fn in_order(ports: &[u16]) -> Self {
        assert_eq!(ports.len(), services::ALL.len(), "one port per service");
        ServicePorts {
            ports: services::ALL
                .iter()
                .map(|s| s.name)
                .zip(ports.iter().copied())
                .collect(),
        }
    }

    /// Each service on a free port of its own.
    pub fn free() -> Result<Self, StackError> {
        Ok(Self::in_order(&process::free_ports(services::ALL.len())?))
    }

    fn from_fn(port: impl Fn(&ServiceFacts) -> u16) -> Self {
        ServicePorts {
            ports: services::ALL.iter().map(|s| (s.name, port(s))).collect(),
        }
    }

    /// The port of `service`'s first instance.
    pub fn port(&self, service: Service) -> u16 {
        self.ports
            .iter()
            .find(|(name, _)| *name == service.name)
            .map_or(service.port, |(_, port)| *port)
    }
}

/// How to run one instance: which service, under which name, on which port, with what else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The service whose binary runs.
    pub service: Service,
    /// The instance name: its files are `<name>.pid` and `<name>.log`; starts with the binary name.
    pub name: String,
    /// Its port, or `None` for a free one.
    pub port: Option<u16>,
    /// Variables added to (or overriding) the stack's environment for the service.
    pub env: Vec<(String, String)>,
}

/// The services of one infra directory: how to start, find and stop their instances.
#[derive(Debug)]
pub struct Stack {
    dir: PathBuf,
    settings: Settings,
    ports: ServicePorts,
    profile: Profile,
    features: Vec<String>,
    env: Vec<(String, String)>,
    binaries: OnceCell<Binaries>,
}

impl Stack {
    /// The stack on `infra`'s directory and `settings`, with the ports from the environment.
    pub fn new(infra: &DevInfra, settings: &Settings) -> Result<Self, StackError> {
        Ok(Stack::in_dir(
            infra.dir().join("services"),
            settings,
            ServicePorts::from_env()?,
        ))
    }

    /// A stack whose pid files and logs live in `dir`, on `settings` and `ports`
    /// (private stacks of the chaos and benchmark runs).
    pub fn in_dir(dir: impl Into<PathBuf>, settings: &Settings, ports: ServicePorts) -> Self {
        Stack {
            dir: dir.into(),
            settings: settings.clone(),
            ports,
            profile: Profile::Debug,
            features: Vec::new(),
            env: Vec::new(),
            binaries: OnceCell::new(),
        }
    }

    /// The same stack, giving every instance these variables too (e.g. the
    /// `OTEL_*` variables that switch the span export on).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// The same stack with these first-instance ports.
    pub fn with_ports(mut self, ports: ServicePorts) -> Self {
        self.ports = ports;
        self
    }

    /// The profile the binaries are built with.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The same stack, building and running the binaries of `profile`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// The same stack, building the services with these cargo features
    /// (`package/feature`, e.g. `invoicing-service/fault-injection`).
    pub fn with_features(mut self, features: Vec<String>) -> Self {
        self.features = features;
        self
    }

    /// Where the instances' pid files and logs are (`<infra dir>/services`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The infrastructure settings the services connect with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The first instances' ports.
    pub fn ports(&self) -> &ServicePorts {
        &self.ports
    }

    /// The base URL of `service`'s first instance, e.g. `http://127.0.0.1:8081`.
    pub fn base_url(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.ports.port(service))
    }

    /// The pages a browser opens on this stack, as (what, URL).
    pub fn page_urls(&self) -> Vec<(String, String)> {
        let orders = self.base_url(ORDER_SERVICE);
        let mut urls = vec![
            ("orders".to_owned(), format!("{orders}/")),
            ("new order".to_owned(), format!("{orders}/new")),
            ("overview".to_owned(), format!("{orders}/overview")),
        ];
        urls.extend(services::consumers().map(|service| {
            (
                service.label.to_lowercase(),
                format!("{}/", self.base_url(*service)),
            )
        }));
        urls
    }

    /// The binaries, built on first use (one `cargo build` for every service).
    pub async fn build(&self) -> Result<&Binaries, StackError> {
        self.binaries
            .get_or_try_init(|| build_services(self.profile, &self.features))
            .await
    }

    /// Serialises starting and stopping between `cargo xtask` runs on this stack.
    pub async fn lock(&self) -> Result<DirLock, StackError> {
        self.create_dir()?;
        Ok(DirLock::acquire(&self.dir.join(".lock")).await?)
    }

    /// The database URL of `service` from the settings (`<DATABASE>_DATABASE_URL`).
    pub fn database_url(&self, service: Service) -> Result<String, StackError> {
        let var = service.database_url_var();
        self.settings
            .service_database_urls
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, url)| url.clone())
            .ok_or_else(|| StackError::config(format!("the settings have no {var}")))
    }

    /// The environment an instance of `service` on `port` gets (a launch's `env` is added to it).
    pub fn environment(
        &self,
        service: Service,
        port: u16,
    ) -> Result<Vec<(String, String)>, StackError> {
        let nodes = self
            .settings
            .kafka_bootstrap_servers
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .count();
        let replication = Replication::for_nodes(nodes);
        let rust_log = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "info".to_owned());
        let mut env: Vec<(String, String)> = vec![
            ("RUST_LOG", rust_log),
            // Plain text in the log files, no colour escapes.
            ("NO_COLOR", "1".to_owned()),
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.database_url(service)?),
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                self.settings.kafka_bootstrap_servers.clone(),
            ),
            ("ORDERS_TOPIC", topics::ORDERS.to_owned()),
            (
                "ORDERS_TOPIC_PARTITIONS",
                topics::ORDERS_PARTITIONS.to_string(),
            ),
            ("KAFKA_REPLICATION_FACTOR", replication.factor.to_string()),
            (
                "KAFKA_MIN_INSYNC_REPLICAS",
                replication.min_insync.to_string(),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        // Where a browser reaches each service's pages: they link to each
        // other, and order-service reads the consumers' APIs there.
        for other in services::ALL {
            env.push((other.url_var(), self.base_url(*other)));
        }
        if let Some(group) = service.consumer_group {
            env.push(("KAFKA_GROUP_ID".to_owned(), group.to_owned()));
            env.push(("KAFKA_AUTO_OFFSET_RESET".to_owned(), "earliest".to_owned()));
        }
        env.extend(self.env.iter().cloned());
        Ok(env)
    }

    /// Starts instance `instance` (from 1) of `service` unless it runs, and
    /// returns once it is ready. Instance 1 listens on the configured port;
    /// others on a free port, in the same consumer group.
    pub async fn start(
        &self,
        service: Service,
        instance: u32,
    ) -> Result<ServiceProcess, StackError> {
        if instance == 0 {
            return Err(StackError::config("service instances are numbered from 1"));
        }
        self.launch(Launch {
            service,
            name: instance_name(service, instance),
            port: (instance == 1).then(|| self.ports.port(service)),
            env: Vec::new(),
        })
        .await
    }

    /// Starts the first instance of every service (concurrently) unless it
    /// runs; returns them, in the registry's order, once all are ready.
    pub async fn up(&self) -> Result<Vec<ServiceProcess>, StackError> {
        let _lock = self.lock().await?;
        let started =
            futures::future::join_all(services::ALL.iter().map(|service| self.start(*service, 1)))
                .await;
        started.into_iter().collect()
    }

    /// Runs `launch` unless an instance of that name runs already (then checks
    /// it is ready and on the requested port), and waits until it is ready. A
    /// start that fails leaves no process behind.
    pub async fn launch(&self, launch: Launch) -> Result<ServiceProcess, StackError> {
        let Launch {
            service,
            name,
            port,
            env,
        } = launch;
        if service_of_instance(&name) != Some(service) {
            return Err(StackError::config(format!(
                "instance name {name:?} must start with {}",
                service.name
            )));
        }
        self.create_dir()?;
        if let Some(mut running) = self.find_named(service, &name)? {
            if let Some(port) = port
                && port != running.port
            {
                return Err(StackError::config(format!(
                    "{name} runs on port {}, not {port}; stop it first (`cargo xtask down`) \
                     to change ports",
                    running.port
                )));
            }
            running.wait_ready(READY_TIMEOUT).await?;
            return Ok(running);
        }
        let port = match port {
            Some(port) => {
                let hint = (name == service.name).then(|| service.port_var());
                process::ensure_port_free(port, &name, hint.as_deref())?;
                port
            }
            None => process::free_port()?,
        };
        let binary = self
            .build()
            .await?
            .path(service)
            .ok_or(StackError::MissingBinary {
                binary: service.name,
            })?
            .to_path_buf();

        let log = self.dir.join(format!("{name}.log"));
        let stdout = open_log(&log, &name, port)?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| InfraError::io("open", &log, e))?;
        let marker = self.marker(&name);
        let mut command = std::process::Command::new(&binary);
        command.env_clear();
        for var in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        command
            .envs(self.environment(service, port)?)
            .envs(env)
            .env(INSTANCE_MARKER_VAR, &marker)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        process::detach(&mut command);
        let child = command.spawn().map_err(|e| InfraError::Spawn {
            program: binary.display().to_string(),
            source: e,
        })?;
        let mut instance = ServiceProcess {
            service,
            pid: child.id(),
            port,
            file: self.dir.join(format!("{name}.pid")),
            log,
            marker,
            name,
            startup: Startup::Started,
            child: Some(child),
        };
        let ready = match instance.write_pid_file() {
            Ok(()) => instance.wait_ready(READY_TIMEOUT).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ready {
            if let Err(kill) = instance.kill() {
                eprintln!(
                    "xtask: could not kill {} after a failed start: {kill}",
                    instance.name
                );
            }
            return Err(e);
        }
        Ok(instance)
    }

    /// Instance `instance` of `service` if it runs.
    pub fn find(
        &self,
        service: Service,
        instance: u32,
    ) -> Result<Option<ServiceProcess>, StackError> {
        self.find_named(service, &instance_name(service, instance))
    }

    /// The instance called `name` if it runs; a stale pid file is removed.
    pub fn find_named(
        &self,
        service: Service,
        name: &str,
    ) -> Result<Option<ServiceProcess>, StackError> {
        let file = self.dir.join(format!("{name}.pid"));
        let Some((pid, port)) = read_pid_file(&file) else {
            return Ok(None);
        };
        let marker = self.marker(name);
        if !is_instance(pid, service, &marker) {
            PidFile::new(&file).remove()?;
            return Ok(None);
        }
        Ok(Some(ServiceProcess {
            service,
            name: name.to_owned(),
            pid,
            port,
            log: self.dir.join(format!("{name}.log")),
            file,
            marker,
            startup: Startup::AlreadyRunning,
            child: None,
        }))
    }

    /// Every instance that runs (first instances, extra ones, rebuilds), by name.
    pub fn running(&self) -> Result<Vec<ServiceProcess>, StackError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(InfraError::io("read directory", &self.dir, e).into()),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "pid"))
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
            .collect();
        names.sort();
        let mut running = Vec::new();
        for name in names {
            if let Some(service) = service_of_instance(&name)
                && let Some(instance) = self.find_named(service, &name)?
            {
                running.push(instance);
            }
        }
        Ok(running)
    }

    /// Stops every running instance (SIGTERM, so they drain; SIGKILL after
    /// [`STOP_GRACE`]); see [`Stack::stop_where`]. Returns how many were stopped.
    pub async fn stop_all(&self) -> Result<usize, StackError> {
        self.stop_where(|_| true).await
    }

    /// Stops the running instances for which `select` is true: order-service
    /// first, so no new events are published, then the consumers together.
    /// Returns how many were stopped.
    pub async fn stop_where(
        &self,
        select: impl Fn(&ServiceProcess) -> bool,
    ) -> Result<usize, StackError> {
        let (mut producers, mut consumers): (Vec<_>, Vec<_>) = self
            .running()?
            .into_iter()
            .filter(|p| select(p))
            .partition(|p| p.service == ORDER_SERVICE);
        let count = producers.len() + consumers.len();
        let mut results = Vec::new();
        for instance in &mut producers {
            eprintln!("xtask: stopping {} (pid {})", instance.name, instance.pid);
            results.push(instance.stop().await);
        }
        for instance in &consumers {
            eprintln!("xtask: stopping {} (pid {})", instance.name, instance.pid);
        }
        results.extend(
            futures::future::join_all(consumers.iter_mut().map(ServiceProcess::stop)).await,
        );
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(count)
    }

    /// One status line per first instance (running or not) and per other running instance.
    pub fn status(&self) -> Result<Vec<ComponentStatus>, StackError> {
        let running = self.running()?;
        let mut lines = Vec::new();
        for &service in services::ALL {
            let name = service.name;
            match running.iter().find(|p| p.name == name) {
                Some(instance) => lines.push(instance.status()),
                None => lines.push(ComponentStatus {
                    name: name.to_owned(),
                    pid: None,
                    address: self.base_url(service),
                    since: None,
                    log: self.dir.join(format!("{name}.log")),
                }),
            }
        }
        for instance in running.iter().filter(|p| p.name != p.service.name) {
            lines.push(instance.status());
        }
        Ok(lines)
    }

    fn marker(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn create_dir(&self) -> Result<(), StackError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| StackError::from(InfraError::io("create directory", &self.dir, e)))
    }
}

/// One running instance of a service, started now or found running.
#[derive(Debug)]
pub struct ServiceProcess {
    service: Service,
    name: String,
    pid: u32,
    port: u16,
    file: PathBuf,
    log: PathBuf,
    marker: String,
    startup: Startup,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Which service it is.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Its instance name, e.g. `shipping-service-2`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Whether it was started by this call or found running.
    pub fn startup(&self) -> Startup {
        self.startup
    }

    /// When it was started (its pid file's time).
    pub fn since(&self) -> Option<SystemTime> {
        PidFile::new(&self.file).modified()
    }

    /// Whether the process still runs (an exited child of ours is reaped here).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits until `/health/ready` answers 200; fails with the end of the log
    /// when the process exits first or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), StackError> {
        let client = ApiClient::new()?;
        let url = format!("{}/health/ready", self.base_url());
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Err(StackError::Exited {
                    what: self.name.clone(),
                    status,
                    tail: log_tail(&self.log, TAIL_LINES),
                    log: self.log.clone(),
                });
            }
            let last_error = match client.status(&url).await {
                Ok(200) => return Ok(()),
                Ok(status) => format!("{url} answered {status}"),
                Err(e) => error_chain(&e),
            };
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(StackError::NotReady {
                    what: self.name.clone(),
                    waited,
                    last_error,
                    tail: log_tail(&self.log, TAIL_LINES),
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(HEALTH_POLL.min(timeout - waited)).await;
        }
    }

    /// SIGTERM (the service drains: HTTP, relay, consumer), up to [`STOP_GRACE`]
    /// to exit, then SIGKILL; removes the pid file.
    pub async fn stop(&mut self) -> Result<(), StackError> {
        let (pid, service, marker) = (self.pid, self.service, self.marker.clone());
        process::terminate_owned(
            &self.name,
            pid,
            || is_instance(pid, service, &marker),
            Signal::Term,
            STOP_GRACE,
            self.child.as_mut(),
        )
        .await?;
        Ok(PidFile::new(&self.file).remove()?)
    }

    /// SIGKILL, no draining (a crash, for fault injection); removes the pid file.
    pub fn kill(&mut self) -> Result<(), StackError> {
        let (pid, service, marker) = (self.pid, self.service, self.marker.clone());
        process::kill_now_owned(
            &self.name,
            pid,
            || is_instance(pid, service, &marker),
            self.child.as_mut(),
        )?;
        Ok(PidFile::new(&self.file).remove()?)
    }

    /// Its line in `cargo xtask status`.
    pub fn status(&self) -> ComponentStatus {
        ComponentStatus {
            name: self.name.clone(),
            pid: Some(self.pid),
            address: self.base_url(),
            since: self.since(),
            log: self.log.clone(),
        }
    }

    /// How the process ended, or `None` while it runs.
    fn exit_status(&mut self) -> Option<String> {
        match self.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(format!("cannot wait for it: {e}")),
            },
            None => (!is_instance(self.pid, self.service, &self.marker))
                .then(|| format!("pid {} is gone", self.pid)),
        }
    }

    fn write_pid_file(&self) -> Result<(), StackError> {
        fs::write(&self.file, format!("{}\n{}\n", self.pid, self.port))
            .map_err(|e| InfraError::io("write pid file", &self.file, e).into())
    }
}

/// One stderr line per instance: started now or found running, pid, URL, log.
pub fn report_started(services: &[ServiceProcess]) {
    for service in services {
        let how = match service.startup() {
            Startup::Started => "started",
            Startup::AlreadyRunning => "already running",
        };
        eprintln!(
            "xtask: {:<18} {how:<15} pid {:<8} {}  log {}",
            service.name(),
            service.pid(),
            service.base_url(),
            service.log_file().display()
        );
    }
}

/// The pid (first line) and port (second line) of an instance's pid file.
fn read_pid_file(path: &Path) -> Option<(u32, u16)> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let port = lines.next()?.trim().parse().ok()?;
    Some((pid, port))
}

/// Whether `pid` is the instance marked `marker`: alive, running `service`'s
/// binary, and (where the environment is readable) carrying the marker.
fn is_instance(pid: u32, service: Service, marker: &str) -> bool {
    process::is_ours(pid, Path::new(service.name))
        && process::environment_has(pid, INSTANCE_MARKER_VAR, marker) != Some(false)
}

/// Opens `path` for appending and writes the header of a new run.
fn open_log(path: &Path, name: &str, port: u16) -> Result<fs::File, StackError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| InfraError::io("open", path, e))?;
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %:z");
    writeln!(file, "{LOG_HEADER} {name} on 127.0.0.1:{port} at {now} ===")
        .map_err(|e| InfraError::io("write", path, e))?;
    Ok(file)
}

/// The last `lines` lines the current run wrote to `log` (after the last start header).
pub fn log_tail(log: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = fs::File::open(log) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(WINDOW)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let run = match text.rfind(LOG_HEADER) {
        Some(start) => text[start..].split_once('\n').map_or("", |(_, rest)| rest),
        None => &text,
    };
    let all: Vec<&str> = run.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};

    fn stack() -> Stack {
        let infra = DevInfra::new("/nonexistent/infra", 19092, 15432);
        let settings = infra.settings(1).expect("settings");
        Stack::new(&infra, &settings)
            .expect("stack")
            .with_ports(ServicePorts::default())
    }

    #[test]
    fn services_are_named_by_binary_database_or_short_name() {
        for (text, service) in [
            ("order", ORDER_SERVICE),
            ("orders", ORDER_SERVICE),
            ("order-service", ORDER_SERVICE),
            ("Invoicing", INVOICING_SERVICE),
            ("shipping-service", SHIPPING_SERVICE),
        ] {
            assert_eq!(parse_service(text).expect(text), service);
        }
        assert!(parse_service("billing").is_err());
    }

    #[test]
    fn instance_names_map_back_to_their_service() {
        assert_eq!(instance_name(SHIPPING_SERVICE, 1), "shipping-service");
        assert_eq!(instance_name(SHIPPING_SERVICE, 2), "shipping-service-2");
        assert_eq!(
            service_of_instance("shipping-service-2"),
            Some(SHIPPING_SERVICE)
        );
        assert_eq!(
            service_of_instance("invoicing-service-rebuild-20261121"),
            Some(INVOICING_SERVICE)
        );
        assert_eq!(service_of_instance("order-servicex"), None);
    }

    #[test]
    fn consumers_get_their_database_group_and_the_topic() {
        let env = stack().environment(INVOICING_SERVICE, 9999).expect("env");
        let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTP_ADDR"), Some("127.0.0.1:9999"));
        assert_eq!(
            get("DATABASE_URL"),
            Some("postgres://invoicing:invoicing@127.0.0.1:15432/invoicing")
        );
        assert_eq!(get("KAFKA_BOOTSTRAP_SERVERS"), Some("127.0.0.1:19092"));
        assert_eq!(get("KAFKA_GROUP_ID"), Some("invoicing"));
        assert_eq!(get("KAFKA_AUTO_OFFSET_RESET"), Some("earliest"));
        assert_eq!(get("ORDERS_TOPIC"), Some("orders"));
        assert_eq!(get("KAFKA_REPLICATION_FACTOR"), Some("1"));
        assert_eq!(get("ORDER_SERVICE_URL"), Some("http://127.0.0.1:8081"));
        let order = stack().environment(ORDER_SERVICE, 1).expect("env");
        assert!(order.iter().all(|(n, _)| n != "KAFKA_GROUP_ID"));
    }

    #[test]
    fn nothing_runs_in_an_empty_directory() {
        let stack = stack();
        assert!(stack.running().expect("running").is_empty());
        let status = stack.status().expect("status");
        assert_eq!(status.len(), 3);
        assert!(status.iter().all(|s| s.pid.is_none()));
        assert_eq!(status[0].address, "http://127.0.0.1:8081");
    }

    #[test]
    fn the_log_tail_is_the_current_run_only() {
        let dir = std::env::temp_dir().join(format!("xtask-log-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("order-service.log");
        drop(open_log(&path, "order-service", 1).expect("open"));
        fs::write(
            &path,
            format!(
                "{}old run failed\n",
                fs::read_to_string(&path).expect("read")
            ),
        )
        .expect("write");
        let mut file = open_log(&path, "order-service", 1).expect("open");
        writeln!(file, "line 1\nline 2\nline 3").expect("write");
        assert_eq!(log_tail(&path, 2), "line 2\nline 3");
        assert!(!log_tail(&path, 10).contains("old run"));
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_instance_that_exits_at_once_fails_with_its_log() {
        let dir = std::env::temp_dir().join(format!("xtask-exit-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("order-service.log");
        let stdout = open_log(&log, "order-service", 1).expect("log");
        let child = std::process::Command::new("sh")
            .args(["-c", "echo 'Error: cannot connect to the database'; exit 3"])
            .stdout(stdout)
            .spawn()
            .expect("spawn");
        let mut instance = ServiceProcess {
            service: ORDER_SERVICE,
            name: "order-service".into(),
            pid: child.id(),
            port: process::free_port().expect("port"),
            file: dir.join("order-service.pid"),
            log,
            marker: String::new(),
            startup: Startup::Started,
            child: Some(child),
        };
        let err = instance
            .wait_ready(Duration::from_secs(30))
            .await
            .expect_err("it exited");
        let text = err.to_string();
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("cannot connect to the database"), "{text}");
        let _ = fs::remove_dir_all(dir);
    }
}
