//! Long-running processes that outlive the tool that started them.
//!
//! The broker and the database run detached (their own process group, stdin
//! closed, output to a log file) so they survive `cargo xtask` exiting and a
//! Ctrl-C in the terminal. Later invocations find them again through a pid file.
//! A pid alone is not proof: after a reboot or a crash the number may belong to
//! an unrelated process, so before any signal is sent we check that the
//! process's command line contains a path only our process has (its config
//! file or data directory). Termination is SIGTERM, a grace period, then SIGKILL.
//!
//! Signals and sessions go through `rustix`; what a process is (its command
//! line, environment, state, parent) is read from `/proc` through `procfs`
//! on Linux, and from `ps` elsewhere.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use rustix::io::Errno;
use rustix::process::Pid;

use crate::InfraError;

/// How often a process is polled while waiting for it to exit.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// How long a process gets to die after SIGKILL before we give up on it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The signals this tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Polite stop: controlled shutdown for Kafka, smart shutdown for PostgreSQL.
    Term,
    /// Fast shutdown for PostgreSQL; what a terminal's Ctrl-C sends.
    Int,
    /// No shutdown at all: the process is gone (fault injection, last resort).
    Kill,
    /// Freeze the process where it is (fault injection: a hung peer whose
    /// connections stay open but never answer).
    Stop,
    /// Thaw a process frozen with [`Signal::Stop`].
    Cont,
}

impl Signal {
    fn to_rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Term => S::TERM,
            Signal::Int => S::INT,
            Signal::Kill => S::KILL,
            Signal::Stop => S::STOP,
            Signal::Cont => S::CONT,
        }
    }

    /// The signal's number (SIGTERM is 15).
    pub fn number(self) -> i32 {
        self.to_rustix().as_raw()
    }

    /// The signal's conventional name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
        }
    }
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn send_signal(pid: u32, signal: Signal) -> Result<(), InfraError> {
    let raw =
        i32::try_from(pid).map_err(|_| InfraError::Config(format!("pid {pid} is out of range")))?;
    let target = Pid::from_raw(raw)
        .filter(|_| raw > 0)
        .ok_or_else(|| InfraError::Config(format!("refusing to signal pid {pid}")))?;
    match rustix::process::kill_process(target, signal.to_rustix()) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(errno) => Err(InfraError::Signal {
            signal: signal.name(),
            pid,
            source: errno.into(),
        }),
    }
}

/// The effective user id of this process (0 when running as root).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether `pid` is alive (not a zombie) and its command line contains `marker`.
///
/// This is the guard against pid reuse: `marker` is a path only our process
/// has on its command line, such as its config file or data directory.
pub fn is_ours(pid: u32, marker: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match command_line(pid) {
        Some(cmdline) => cmdline.contains(&*marker.to_string_lossy()),
        None => false,
    }
}

/// Whether a process with this pid exists and has not exited (zombies count as exited).
pub fn is_alive(pid: u32) -> bool {
    let Some(target) = i32::try_from(pid)
        .ok()
        .filter(|raw| *raw > 0)
        .and_then(Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 only checks that the process exists and may be signalled.
    let exists = matches!(
        rustix::process::test_kill_process(target),
        Ok(()) | Err(Errno::PERM)
    );
    exists && !is_zombie(pid)
}

/// The process `pid` as procfs shows it.
#[cfg(target_os = "linux")]
fn proc_entry(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// The process's command line with arguments separated by spaces.
pub fn command_line(pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let arguments = proc_entry(pid)?.cmdline().ok()?;
        Some(arguments.join(" ").trim_end().to_owned())
    }
    #[cfg(not(target_os = "linux"))]
    command_line_from_ps(pid)
}

/// The command line as `ps` shows it (no procfs, e.g. macOS).
#[cfg(not(target_os = "linux"))]
fn command_line_from_ps(pid: u32) -> Option<String> {
    let output = std::process::Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether the environment of `pid` holds `name=value`; `None` where it cannot
/// be read (no procfs, or another user's process).
///
/// A variable set only for the processes we start is a sharper pid-reuse guard
/// than the command line when several processes run the same binary.
pub fn environment_has(pid: u32, name: &str, value: &str) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        let environment = proc_entry(pid)?.environ().ok()?;
        Some(environment.get(std::ffi::OsStr::new(name)) == Some(&std::ffi::OsString::from(value)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, name, value);
        None
    }
}

/// Whether `pid` has exited and waits to be reaped (`false` where procfs cannot tell).
fn is_zombie(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        proc_entry(pid)
            .and_then(|process| process.stat().ok())
            .is_some_and(|stat| stat.state == 'Z')
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

/// The pids whose parent is `pid`, where procfs tells it (empty elsewhere).
pub fn children_of(pid: u32) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        let Ok(processes) = procfs::process::all_processes() else {
            return Vec::new();
        };
        processes
            .filter_map(Result::ok)
            .filter_map(|process| process.stat().ok())
            .filter(|stat| u32::try_from(stat.ppid).ok() == Some(pid))
            .filter_map(|stat| u32::try_from(stat.pid).ok())
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Vec::new()
    }
}

/// `path` opened for appending, twice: for a detached process's stdout and stderr.
pub fn append_log(path: &Path) -> Result<(std::fs::File, std::fs::File), InfraError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| InfraError::io("open", path, e))?;
    let err = out
        .try_clone()
        .map_err(|e| InfraError::io("open", path, e))?;
    Ok((out, err))
}

/// Makes `command` start in a new session (and so a new process group) with
/// no controlling terminal: a Ctrl-C or a closed terminal does not reach it,
/// and it keeps running after this tool exits.
pub fn detach(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()
                .map(|_| ())
                .map_err(io::Error::from)
        });
    }
}

/// Stops the process `pid`: `signal`, up to `grace` for it to exit, then SIGKILL.
///
/// Does nothing when `pid` is not ours any more (see [`is_ours`]). When this
/// process is the parent, pass the [`Child`] so it is reaped and does not
/// linger as a zombie.
pub async fn terminate(
    what: &str,
    pid: u32,
    marker: &Path,
    signal: Signal,
    grace: Duration,
    child: Option<&mut Child>,
) -> Result<(), InfraError> {
    terminate_owned(what, pid, || is_ours(pid, marker), signal, grace, child).await
}

/// [`terminate`] with the ownership check supplied by the caller: `owned`
/// says whether `pid` is still the process we mean (checked before each signal).
pub async fn terminate_owned(
    what: &str,
    pid: u32,
    owned: impl Fn() -> bool,
    signal: Signal,
    grace: Duration,
    child: Option<&mut Child>,
) -> Result<(), InfraError> {
    let mut child = child;
    if !owned() {
        reap(child.as_deref_mut());
        return Ok(());
    }
    send_signal(pid, signal)?;
    if wait_for_exit(pid, grace, child.as_deref_mut()).await {
        return Ok(());
    }
    eprintln!(
        "xtask: {what} (pid {pid}) still running after {}s, sending SIGKILL",
        grace.as_secs()
    );
    if owned() {
        send_signal(pid, Signal::Kill)?;
    }
    if wait_for_exit(pid, KILL_WAIT, child).await {
        Ok(())
    } else {
        Err(InfraError::StillRunning {
            what: what.to_owned(),
            pid,
            waited: grace + KILL_WAIT,
        })
    }
}

/// SIGKILL to `pid`, then a bounded wait for it to vanish.
pub fn kill_now(
    what: &str,
    pid: u32,
    marker: &Path,
    child: Option<&mut Child>,
) -> Result<(), InfraError> {
    kill_now_owned(what, pid, || is_ours(pid, marker), child)
}

/// [`kill_now`] with the ownership check supplied by the caller (see [`terminate_owned`]).
pub fn kill_now_owned(
    what: &str,
    pid: u32,
    owned: impl Fn() -> bool,
    child: Option<&mut Child>,
) -> Result<(), InfraError> {
    let mut child = child;
    if !owned() {
        reap(child.as_deref_mut());
        return Ok(());
    }
    send_signal(pid, Signal::Kill)?;
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        if exited(pid, child.as_deref_mut()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(InfraError::StillRunning {
                what: what.to_owned(),
                pid,
                waited: KILL_WAIT,
            });
        }
        // A SIGKILLed process is gone within milliseconds; this loop rarely turns.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `pid` has exited or `limit` passed; true if it exited.
pub async fn wait_for_exit(pid: u32, limit: Duration, child: Option<&mut Child>) -> bool {
    let mut child = child;
    let deadline = Instant::now() + limit;
    loop {
        if exited(pid, child.as_deref_mut()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
}

fn exited(pid: u32, child: Option<&mut Child>) -> bool {
    match child {
        // Our own child: try_wait reaps it, so it never shows up as a zombie.
        Some(child) => !matches!(child.try_wait(), Ok(None)),
        None => !is_alive(pid),
    }
}

fn reap(child: Option<&mut Child>) {
    if let Some(child) = child {
        // The process is already gone or not ours; collect its exit status if any.
        let _ = child.try_wait();
    }
}

/// A file holding the pid of a detached process.
#[derive(Debug, Clone)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// The pid file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PidFile { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid in the file, `None` when there is no file or it holds no number.
    pub fn read(&self) -> Option<u32> {
        let text = fs::read_to_string(&self.path).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Writes `pid`.
    pub fn write(&self, pid: u32) -> Result<(), InfraError> {
        fs::write(&self.path, format!("{pid}\n"))
            .map_err(|e| InfraError::io("write pid file", &self.path, e))
    }

    /// Removes the file; a missing file is fine.
    pub fn remove(&self) -> Result<(), InfraError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(InfraError::io("remove pid file", &self.path, e)),
        }
    }

    /// When the file was last written: when the process was started.
    pub fn modified(&self) -> Option<SystemTime> {
        fs::metadata(&self.path).ok()?.modified().ok()
    }
}

/// An exclusive lock on a file, held until dropped, so that two `cargo xtask`
/// runs do not start or stop the same processes at the same time.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

impl DirLock {
    /// Takes the lock on `path` (created if missing), waiting while another process holds it.
    pub async fn acquire(path: &Path) -> Result<DirLock, InfraError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| InfraError::io("open lock file", path, e))?;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(err)) => {
                    return Err(InfraError::io("lock", path, err));
                }
            }
            if !told {
                eprintln!(
                    "xtask: waiting for another `cargo xtask` working in {}",
                    path.parent().unwrap_or(path).display()
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (see [`free_ports`]).
pub fn free_port() -> Result<u16, InfraError> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct ports on 127.0.0.1 that were free a moment ago, all held
/// open until every one is chosen.
///
/// They are taken outside the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`) wherever there is room: a port from
/// inside it (what binding port 0 returns) can be handed to any outgoing
/// connection as its source port the moment its server stops, and a server
/// restarted on it (a killed service, a restarted broker) then fails to bind.
pub fn free_ports(count: usize) -> Result<Vec<u16>, InfraError> {
    let bind_error = |e| InfraError::Spawn {
        program: "bind 127.0.0.1".into(),
        source: e,
    };
    let (low, high) = ephemeral_range();
    let below = FIRST_UNPRIVILEGED_CHOICE..low;
    let above = high.saturating_add(1)..=u16::MAX;
    let mut held: Vec<TcpListener> = Vec::with_capacity(count);
    for _ in 0..count * 100 {
        if held.len() == count {
            break;
        }
        let port = if !below.is_empty() {
            rand::random_range(below.clone())
        } else if !above.is_empty() {
            rand::random_range(above.clone())
        } else {
            break;
        };
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            held.push(listener);
        }
    }
    // No room outside the ephemeral range: let the OS pick.
    while held.len() < count {
        held.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(bind_error)?);
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(bind_error))
        .collect()
}

/// The lowest port [`free_ports`] picks (clear of well-known service ports).
const FIRST_UNPRIVILEGED_CHOICE: u16 = 10_000;

/// The kernel's ephemeral port range, or Linux's default where it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// Waits until 127.0.0.1:`port` can be bound again, up to `limit`; whether it can.
///
/// A SIGKILLed process can already look gone (its main thread a zombie)
/// while its other threads are still exiting and hold its listening socket
/// for a moment; a restart on the same port waits for that here.
pub async fn wait_port_free(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails with a clear message when something already listens on 127.0.0.1:`port`.
pub fn ensure_port_free(port: u16, what: &str, env_var: Option<&str>) -> Result<(), InfraError> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let hint = env_var
                .map(|v| format!("; stop it or choose another port with {v}"))
                .unwrap_or_default();
            Err(InfraError::Config(format!(
                "port {port} for {what} is in use by another process{hint}"
            )))
        }
        Err(e) => Err(InfraError::Spawn {
            program: format!("bind 127.0.0.1:{port}"),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_matched_by_its_own_command_line() {
        let me = std::process::id();
        assert!(is_alive(me));
        let exe = std::env::current_exe().expect("test binary path");
        assert!(is_ours(me, &exe));
        assert!(!is_ours(
            me,
            Path::new("/definitely/not/on/the/command/line")
        ));
    }

    #[test]
    fn a_detached_child_leads_its_own_session_and_is_our_child() {
        let mut command = std::process::Command::new("sleep");
        command.arg("30");
        detach(&mut command);
        let mut child = command.spawn().expect("spawn sleep");
        let pid = child.id();
        assert!(children_of(std::process::id()).contains(&pid));
        let stat = proc_entry(pid).expect("process").stat().expect("stat");
        assert_eq!(stat.pgrp.to_string(), pid.to_string(), "process group");
        assert_eq!(stat.session.to_string(), pid.to_string(), "session");
        kill_now("sleep", pid, Path::new("sleep"), Some(&mut child)).expect("kill");
        assert!(!is_alive(pid));
    }

    #[test]
    fn a_variable_set_for_a_child_is_visible_in_its_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("XTASK_TEST_MARKER", "/infra/services/x")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        if Path::new("/proc/self/environ").exists() {
            // Until the child has exec'd, /proc shows the environment it forked
            // with (ours); wait for `sleep` to be running.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !command_line(pid).is_some_and(|cmdline| cmdline.starts_with("sleep 30")) {
                assert!(Instant::now() < deadline, "sleep never started");
                std::thread::yield_now();
            }
            assert_eq!(
                environment_has(pid, "XTASK_TEST_MARKER", "/infra/services/x"),
                Some(true)
            );
            assert_eq!(
                environment_has(pid, "XTASK_TEST_MARKER", "/infra/services"),
                Some(false)
            );
        }
        kill_now("sleep", pid, Path::new("sleep"), Some(&mut child)).expect("kill");
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!is_alive(pid));
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(4).expect("free ports");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        let (low, high) = ephemeral_range();
        for port in ports {
            ensure_port_free(port, "test", None).expect("port is free");
            assert!(
                !(low..=high).contains(&port),
                "{port} is in the ephemeral range {low}-{high}, where outgoing connections may take it"
            );
        }
    }

    #[tokio::test]
    async fn a_port_is_waited_for_until_its_listener_is_gone() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(!wait_port_free(port, Duration::from_millis(200)).await);
        let (closed, on_closed) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn(async move {
            let _ = on_closed.await;
            drop(listener);
        });
        let waiting = tokio::spawn(wait_port_free(port, Duration::from_secs(30)));
        let _ = closed.send(());
        holder.await.expect("holder");
        assert!(
            waiting.await.expect("waiter"),
            "port {port} was never released"
        );
    }

    #[test]
    fn a_port_in_use_is_reported_with_the_variable_to_change() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let err =
            ensure_port_free(port, "Kafka", Some("INFRA_KAFKA_PORT")).expect_err("port is taken");
        assert!(err.to_string().contains("INFRA_KAFKA_PORT"), "{err}");
    }

    #[tokio::test]
    async fn a_dir_lock_is_exclusive_until_dropped() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(".lock");
        let first = DirLock::acquire(&path).await.expect("first lock");
        let second =
            tokio::time::timeout(Duration::from_millis(300), DirLock::acquire(&path)).await;
        assert!(second.is_err(), "a second holder got the lock");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), DirLock::acquire(&path)).await;
        assert!(matches!(third, Ok(Ok(_))), "the lock was not released");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn pid_files_round_trip_and_tolerate_absence() {
        let dir = std::env::temp_dir().join(format!("xtask-pidfile-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("temp dir");
        let file = PidFile::new(dir.join("x.pid"));
        assert_eq!(file.read(), None);
        file.write(4242).expect("write");
        assert_eq!(file.read(), Some(4242));
        assert!(file.modified().is_some());
        file.remove().expect("remove");
        file.remove().expect("remove twice");
        let _ = fs::remove_dir_all(dir);
    }
}
