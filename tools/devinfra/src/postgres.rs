//! PostgreSQL as a private server: its own data directory, port and log, on loopback.
//!
//! The server binaries come from the system package (`initdb`, `pg_ctl`).
//! `initdb` refuses to run as root, so when this tool runs as root every server
//! command runs as the `postgres` system user through `runuser`, and the
//! directory is handed to that user. TCP connections authenticate with
//! SCRAM-SHA-256; the unix socket is disabled so nothing depends on its path.
//!
//! Each service gets its own login role and its own database, owned by that
//! role, with CONNECT revoked from PUBLIC: a service cannot even open another
//! service's database, which is the isolation the architecture promises.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform::services;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::infra::service_url_var;
use crate::process::{self, Signal};
use crate::wait::{self, Probe};
use crate::{InfraError, Startup, prereq};

/// The system user that owns the data directory when this tool runs as root.
pub const SYSTEM_USER: &str = "postgres";

/// The superuser role.
pub const SUPERUSER: &str = "postgres";

/// LOCAL DEVELOPMENT DEFAULT: the superuser's password. Never use it anywhere else.
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// The services' databases in the flow's order (`platform::services`), each
/// owned by a login role of the same name (LOCAL DEVELOPMENT DEFAULT: the
/// password is the role name too).
pub fn service_databases() -> impl Iterator<Item = &'static str> {
    services::ALL.iter().map(|service| service.database)
}

/// Connections the server accepts: every test opens several pools of its own
/// and runs in parallel with the others. The test container of the
/// end-to-end tests and docker-compose.yml's server use the same number.
pub const MAX_CONNECTIONS: u32 = 300;

/// Settings appended to `postgresql.conf` after `initdb`.
fn server_settings() -> String {
    format!(
        "\n\
# --- written by `cargo xtask infra up` (local development) ---\n\
listen_addresses = '127.0.0.1'\n\
# TCP only: no unix socket whose path could be too long or unwritable.\n\
unix_socket_directories = ''\n\
max_connections = {MAX_CONNECTIONS}\n\
# Durable as in production, so benchmark numbers are honest.\n\
fsync = on\n\
synchronous_commit = on\n\
full_page_writes = on\n\
logging_collector = off\n\
log_line_prefix = '%m [%p] %q%u@%d '\n"
    )
}

/// How long a fast shutdown may take before the postmaster is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// How long a starting server may take to accept `select 1`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private PostgreSQL server in one directory (data directory, log).
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    kill_on_drop: bool,
}

impl Postgres {
    /// The server whose data lives in `<dir>/data`, listening on 127.0.0.1:`port`.
    pub fn new(dir: impl Into<PathBuf>, port: u16) -> Self {
        Postgres {
            dir: dir.into(),
            port,
            kill_on_drop: false,
        }
    }

    /// Creates the cluster on first start (`initdb`), starts the server with
    /// `pg_ctl` and waits until `select 1` succeeds. Already running: only waits.
    pub async fn start(&mut self) -> Result<Startup, InfraError> {
        if self.pid().is_some() {
            if let Some(port) = self.listening_port()
                && port != self.port
            {
                return Err(InfraError::Config(format!(
                    "PostgreSQL in {} runs on port {port}, not {}; stop it first \
                     (`cargo xtask infra down`) to change ports",
                    self.dir.display(),
                    self.port
                )));
            }
            self.wait_ready(START_TIMEOUT).await?;
            return Ok(Startup::AlreadyRunning);
        }
        let bin =
            prereq::postgres_bin_dir().map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
        process::ensure_port_free(self.port, "PostgreSQL", Some("INFRA_PG_PORT"))?;
        if !self.data_dir().join("PG_VERSION").is_file() {
            self.init(&bin).await?;
        }
        let options = format!("-p {}", self.port);
        let output = self
            .server_command(&bin, "pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .await
            .map_err(|e| InfraError::Spawn {
                program: "pg_ctl".into(),
                source: e,
            })?;
        if !output.status.success() {
            return Err(InfraError::CommandFailed {
                command: format!("pg_ctl start (see {})", self.log_file().display()),
                status: output.status.to_string(),
                output: format!(
                    "{}{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr),
                    log_tail(&self.log_file())
                ),
            });
        }
        self.wait_ready(START_TIMEOUT).await?;
        Ok(Startup::Started)
    }

    /// Fast shutdown (`pg_ctl stop -m fast`: roll back open transactions,
    /// checkpoint, exit), then waits until the postmaster is gone.
    pub async fn stop(&mut self) -> Result<(), InfraError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        if let Ok(bin) = prereq::postgres_bin_dir() {
            let output = self
                .server_command(&bin, "pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60", "stop"])
                .output()
                .await;
            if let Ok(output) = output
                && !output.status.success()
            {
                eprintln!(
                    "xtask: pg_ctl stop failed ({}), signalling the postmaster",
                    output.status
                );
            }
        }
        // SIGINT is PostgreSQL's fast shutdown; a no-op if pg_ctl already stopped it.
        process::terminate(
            "PostgreSQL",
            pid,
            &self.data_dir(),
            Signal::Int,
            STOP_GRACE,
            None,
        )
        .await
    }

    /// Stops and starts the server again.
    pub async fn restart(&mut self) -> Result<(), InfraError> {
        self.stop().await?;
        self.start().await.map(|_| ())
    }

    /// SIGKILL to the postmaster and all its processes: a crash, for fault
    /// injection. The next start runs crash recovery.
    pub fn kill(&mut self) -> Result<(), InfraError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        // Backends and background workers run in sessions of their own, so
        // signalling the postmaster's group would miss them: collect them first.
        let children = process::children_of(pid);
        process::kill_now("PostgreSQL", pid, &self.data_dir(), None)?;
        for child in children {
            process::send_signal(child, Signal::Kill)?;
        }
        Ok(())
    }

    /// Waits until the superuser can connect and run `select 1`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), InfraError> {
        let url = self.admin_url();
        let data_dir = self.data_dir();
        let pid = self.pid();
        let log = self.log_file();
        wait::until(
            "PostgreSQL",
            timeout,
            Duration::from_millis(200),
            Some(log.clone()),
            || {
                let url = url.clone();
                let data_dir = data_dir.clone();
                let log = log.clone();
                async move {
                    if let Some(pid) = pid
                        && !process::is_ours(pid, &data_dir)
                    {
                        return Probe::Failed(InfraError::Exited {
                            what: "PostgreSQL".into(),
                            status: format!("pid {pid} is gone"),
                            log,
                        });
                    }
                    match select_one(&url).await {
                        Ok(()) => Probe::Ready(()),
                        Err(e) => Probe::NotYet(e.to_string()),
                    }
                }
            },
        )
        .await
    }

    /// Creates (or repairs) the login role and database of `service`: the role
    /// owns the database and PUBLIC may not connect to it. Idempotent.
    pub async fn provision_service(&self, service: &str) -> Result<(), InfraError> {
        let mut admin = PgConnection::connect(&self.admin_url()).await?;
        let role = quote_ident(service);
        let role_exists: bool =
            sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
                .bind(service)
                .fetch_one(&mut admin)
                .await?;
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        sqlx::raw_sql(AssertSqlSafe(format!(
            "{verb} ROLE {role} LOGIN PASSWORD {}",
            quote_literal(service)
        )))
        .execute(&mut admin)
        .await?;
        let database_exists: bool =
            sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
                .bind(service)
                .fetch_one(&mut admin)
                .await?;
        if !database_exists {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE DATABASE {role} OWNER {role}"
            )))
            .execute(&mut admin)
            .await?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER DATABASE {role} OWNER TO {role}; \
             REVOKE CONNECT, TEMPORARY ON DATABASE {role} FROM PUBLIC"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }

    /// Provisions every service's role and database ([`Postgres::provision_service`]).
    pub async fn provision_services(&self) -> Result<(), InfraError> {
        for service in service_databases() {
            self.provision_service(service).await?;
        }
        Ok(())
    }

    /// `<SERVICE>_DATABASE_URL` and its URL for each service, in the flow's order.
    pub fn service_database_urls(&self) -> Vec<(String, String)> {
        service_databases()
            .map(|s| (service_url_var(s), self.service_url(s)))
            .collect()
    }

    /// The superuser's URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The URL a service uses: its own role, password and database.
    pub fn service_url(&self, service: &str) -> String {
        format!(
            "postgres://{service}:{service}@127.0.0.1:{}/{service}",
            self.port
        )
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The postmaster's pid, if it runs (checked against pid reuse).
    pub fn pid(&self) -> Option<u32> {
        let pid = self.postmaster_pid_line(0)?.parse().ok()?;
        process::is_ours(pid, &self.data_dir()).then_some(pid)
    }

    /// The port the running server listens on (recorded in `postmaster.pid`),
    /// which may differ from the configured one if `INFRA_PG_PORT` changed since.
    pub fn listening_port(&self) -> Option<u16> {
        self.pid()?;
        self.postmaster_pid_line(3)?.parse().ok()
    }

    /// When the running server started (recorded in `postmaster.pid`).
    pub fn started_at(&self) -> Option<SystemTime> {
        self.pid()?;
        let secs: u64 = self.postmaster_pid_line(2)?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The server log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Makes dropping this value SIGKILL the server (private servers in tests).
    pub fn kill_on_drop(&mut self, yes: bool) {
        self.kill_on_drop = yes;
    }

    fn postmaster_pid_line(&self, index: usize) -> Option<String> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().nth(index).map(|l| l.trim().to_owned())
    }

    /// `initdb` with the superuser password, then the server settings.
    async fn init(&self, bin: &Path) -> Result<(), InfraError> {
        eprintln!(
            "xtask: creating the PostgreSQL cluster in {}",
            self.data_dir().display()
        );
        fs::create_dir_all(&self.dir)
            .map_err(|e| InfraError::io("create directory", &self.dir, e))?;
        let as_system_user = process::effective_uid() == 0;
        let owner = if as_system_user {
            let owner = system_user_ids().await?;
            hand_over(&self.dir, owner)?;
            self.check_system_user_can_write().await?;
            Some(owner)
        } else {
            None
        };

        let password_file = self.dir.join("superuser.password");
        write_secret(&password_file, SUPERUSER_PASSWORD, owner)?;
        let output = self
            .server_command(bin, "initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER])
            .arg(format!("--pwfile={}", password_file.display()))
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .await;
        let _ = fs::remove_file(&password_file);
        let output = output.map_err(|e| InfraError::Spawn {
            program: "initdb".into(),
            source: e,
        })?;
        if !output.status.success() {
            return Err(InfraError::CommandFailed {
                command: "initdb".into(),
                status: output.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        let conf = self.data_dir().join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| InfraError::io("open", &conf, e))?;
        file.write_all(server_settings().as_bytes())
            .map_err(|e| InfraError::io("write", &conf, e))
    }

    /// The directory may sit under a path the `postgres` user cannot enter
    /// (a checkout in /root); say so instead of letting initdb fail obscurely.
    async fn check_system_user_can_write(&self) -> Result<(), InfraError> {
        let ok = tokio::process::Command::new("runuser")
            .args(["-u", SYSTEM_USER, "--", "test", "-w"])
            .arg(&self.dir)
            .current_dir("/")
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(InfraError::Config(format!(
                "the `{SYSTEM_USER}` user cannot write {} (a parent directory is not \
                 searchable by others); set INFRA_DIR to a directory it can reach, \
                 e.g. INFRA_DIR=/var/tmp/orderflow-infra",
                self.dir.display()
            )))
        }
    }

    /// A PostgreSQL server program, run as the `postgres` user when we are root.
    fn server_command(&self, bin: &Path, program: &str) -> tokio::process::Command {
        let program = bin.join(program);
        let mut command = if process::effective_uid() == 0 {
            let mut command = tokio::process::Command::new("runuser");
            command.args(["-u", SYSTEM_USER, "--"]).arg(program);
            command
        } else {
            tokio::process::Command::new(program)
        };
        // The postgres user may not be allowed into our working directory.
        // Own process group: a Ctrl-C meant for `cargo xtask` must not cut
        // initdb or pg_ctl off half-way; the caller decides when to stop.
        command
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.kill_on_drop {
            // Best effort: a test that failed half-way must not leave a server behind.
            let _ = self.kill();
        }
    }
}

/// Creates the empty database `name` owned by the login role `owner`, closed to
/// PUBLIC like the service databases (what a rebuild of a service's view starts from).
pub async fn create_owned_database(
    admin_url: &str,
    name: &str,
    owner: &str,
) -> Result<(), InfraError> {
    let mut admin = PgConnection::connect(admin_url).await?;
    let database = quote_ident(name);
    let role = quote_ident(owner);
    // CREATE DATABASE cannot run inside a transaction block, so one statement each.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE DATABASE {database} OWNER {role}"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// `url` with its database (the path) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The path (the database) starts at the first '/' after `scheme://authority`.
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let prefix = &base[..path];
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

async fn select_one(url: &str) -> Result<(), sqlx::Error> {
    let mut connection = PgConnection::connect(url).await?;
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    if one == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!("select 1 returned {one}")))
    }
}

/// The `postgres` user's uid and gid.
async fn system_user_ids() -> Result<(u32, u32), InfraError> {
    let id = |flag: &'static str| async move {
        let output = tokio::process::Command::new("id")
            .args([flag, SYSTEM_USER])
            .output()
            .await
            .map_err(|e| InfraError::Spawn {
                program: "id".into(),
                source: e,
            })?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .map_err(|_| {
                InfraError::MissingPrerequisites(vec![crate::error::Missing {
                    what: "the `postgres` system user (PostgreSQL refuses to run as root)".into(),
                    install: "apt-get install -y postgresql".into(),
                }])
            })
    };
    Ok((id("-u").await?, id("-g").await?))
}

fn hand_over(dir: &Path, (uid, gid): (u32, u32)) -> Result<(), InfraError> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| InfraError::io("change owner of", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| InfraError::io("set permissions of", dir, e))
}

fn write_secret(path: &Path, secret: &str, owner: Option<(u32, u32)>) -> Result<(), InfraError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| InfraError::io("create", path, e))?;
    writeln!(file, "{secret}").map_err(|e| InfraError::io("write", path, e))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| InfraError::io("change owner of", path, e))?;
    }
    Ok(())
}

fn log_tail(log: &Path) -> String {
    let Ok(text) = fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    format!("\n{}:\n{tail}", log.display())
}

/// `name` as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_allows_max_connections() {
        let line = format!("max_connections = {MAX_CONNECTIONS}");
        assert!(server_settings().lines().any(|l| l == line));
    }

    #[test]
    fn urls_follow_the_documented_shape() {
        let pg = Postgres::new("/infra/postgres", 15432);
        assert_eq!(
            pg.admin_url(),
            "postgres://postgres:postgres@127.0.0.1:15432/postgres"
        );
        assert_eq!(
            pg.service_url("orders"),
            "postgres://orders:orders@127.0.0.1:15432/orders"
        );
    }

    #[test]
    fn another_database_keeps_role_host_and_options() {
        assert_eq!(
            with_database(
                "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing",
                "invoicing_rebuild_1"
            ),
            "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing_rebuild_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/db?sslmode=disable", "other"),
            "postgres://u:p@h:1/other?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1", "db"),
            "postgres://u:p@h:1/db"
        );
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn a_server_that_never_ran_has_no_pid() {
        let pg = Postgres::new(std::env::temp_dir().join("xtask-no-such-pg"), 1);
        assert_eq!(pg.pid(), None);
        assert_eq!(pg.started_at(), None);
    }
}
