//! One way to run a service: its HTTP server and its background tasks
//! (the outbox relay, the inbox, purges) until shutdown, drained in order.
//!
//! [`App::bind`] does what can fail at start-up and serves nothing yet, so
//! tests build the same `App` on port 0, or drive [`App::router`] without a
//! socket. [`App::run_until_stopped`] then runs everything until the token
//! fires (SIGTERM or Ctrl-C in the binaries, the test's own in tests), and
//! stops in a fixed order:
//!
//! 1. the HTTP server stops accepting and finishes the requests in flight,
//!    so every accepted write has committed (and, in order-service, has its
//!    outbox row);
//! 2. the background tasks are told to stop, and each drains its work: the
//!    relay finishes its batch and flushes its producer, the inbox finishes
//!    its record and commits its offsets;
//! 3. `run_until_stopped` returns once all of them have.
//!
//! A background task that ends on its own, or fails, stops the whole
//! service with an error naming it: a service whose relay or inbox is gone
//! would otherwise look healthy while doing nothing.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;

use axum::Router;
use platform::task::{BackgroundTask, TaskError};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a service could not listen.
#[derive(Debug, thiserror::Error)]
#[error("could not listen on {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Why a running service stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server failed; the background tasks were stopped.
    #[error("the HTTP server failed")]
    Http(#[source] std::io::Error),
    /// A background task failed; the rest of the service was stopped.
    #[error("background task {task:?} failed")]
    TaskFailed {
        /// Which task.
        task: &'static str,
        /// Its error.
        #[source]
        source: TaskError,
    },
    /// A background task ended (or panicked) before shutdown was requested.
    #[error("background task {0:?} stopped before shutdown was requested")]
    TaskStopped(&'static str),
}

impl RunError {
    /// The failed task's error, as `E`, if that is what it was.
    pub fn task_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            RunError::TaskFailed { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }
}

/// A service that is bound and assembled but not yet running.
#[derive(Debug)]
pub struct App {
    name: &'static str,
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    tasks: Vec<BackgroundTask>,
}

impl App {
    /// Binds `addr` for the service called `name`, which will serve `router`.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        router: Router,
    ) -> Result<Self, BindError> {
        let bind_error = |source| BindError { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(App {
            name,
            listener,
            local_addr,
            router,
            tasks: Vec::new(),
        })
    }

    /// Binds the service called `name` as `http` says, serving `routes`
    /// inside the common layers (health from `pool` and `readiness`,
    /// `metrics`, the `Host` and same-origin checks, timeouts, limits,
    /// tracing): what every service's `build` ends with. The hosts it
    /// answers to are known only once it listens (port 0 in tests), so the
    /// router is assembled after the bind.
    pub async fn serve(
        name: &'static str,
        http: &crate::config::HttpSettings,
        routes: Router,
        pool: sqlx::PgPool,
        readiness: platform::health::Readiness,
        metrics: impl Into<std::sync::Arc<prometheus_client::registry::Registry>>,
    ) -> Result<Self, BindError> {
        let mut app = App::bind(name, http.addr, Router::new()).await?;
        app.router = crate::http::with_common_layers(
            routes,
            pool,
            readiness,
            metrics.into(),
            http.limits(),
            http.allowed_hosts(app.local_addr),
        );
        Ok(app)
    }

    /// Adds a task to run beside the HTTP server (see [`BackgroundTask`]).
    pub fn with_task(mut self, task: BackgroundTask) -> Self {
        self.tasks.push(task);
        self
    }

    /// The address the listener is bound to (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The complete router, for `tower::ServiceExt::oneshot` tests without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves HTTP and runs the background tasks until `shutdown` fires, then
    /// drains in the order of the module documentation.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let App {
            name,
            listener,
            router,
            tasks: background,
            local_addr,
        } = self;
        tracing::info!(service = name, addr = %local_addr, "serving");
        let stop_tasks = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        for task in background {
            let name = task.name();
            let handle = tasks.spawn(task.start(stop_tasks.clone()));
            names.insert(handle.id(), name);
            tracing::info!(task = name, "background task started");
        }

        let stop_http = shutdown.child_token();
        let server = crate::http::serve(listener, router, stop_http.clone());
        tokio::pin!(server);
        let mut failure = None;
        let served = loop {
            tokio::select! {
                served = &mut server => break served,
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let error = task_ended(&names, ended);
                    tracing::error!(error = %platform::error::chain(&error), "stopping the service");
                    failure.get_or_insert(error);
                    stop_http.cancel();
                }
            }
        };

        stop_tasks.cancel();
        while let Some(ended) = tasks.join_next_with_id().await {
            let task = task_name(&names, &ended);
            match ended {
                Ok((_, Ok(()))) => tracing::info!(task, "background task stopped"),
                Ok((_, Err(source))) => {
                    let error = RunError::TaskFailed { task, source };
                    tracing::error!(error = %platform::error::chain(&error), "while stopping");
                    failure.get_or_insert(error);
                }
                Err(e) => {
                    tracing::error!(task, error = %e, "background task panicked while stopping")
                }
            }
        }
        served.map_err(RunError::Http)?;
        match failure {
            Some(error) => Err(error),
            None => {
                tracing::info!(service = name, "stopped");
                Ok(())
            }
        }
    }
}

type Ended = Result<(tokio::task::Id, Result<(), TaskError>), tokio::task::JoinError>;

/// The error a task that ended before shutdown stops the service with.
fn task_ended(names: &HashMap<tokio::task::Id, &'static str>, ended: Ended) -> RunError {
    let task = task_name(names, &ended);
    match ended {
        Ok((_, Err(source))) => RunError::TaskFailed { task, source },
        Ok((_, Ok(()))) | Err(_) => RunError::TaskStopped(task),
    }
}

fn task_name(names: &HashMap<tokio::task::Id, &'static str>, ended: &Ended) -> &'static str {
    let id = match ended {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    };
    names.get(&id).copied().unwrap_or("unnamed")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    async fn unstarted() -> App {
        App::bind(
            "test-service",
            "127.0.0.1:0".parse().unwrap(),
            Router::new(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn background_tasks_stop_after_the_server_on_shutdown() {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
        let app = unstarted()
            .await
            .with_task(BackgroundTask::new("relay", |stop| async move {
                stop.cancelled().await;
                let _ = stopped_tx.send(());
            }));
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        shutdown.cancel();
        running.await.unwrap().unwrap();
        stopped_rx
            .await
            .expect("the task saw its stop signal and finished");
    }

    #[tokio::test]
    async fn a_background_task_that_ends_early_stops_the_service() {
        let app = unstarted()
            .await
            .with_task(BackgroundTask::new("relay", |_stop| async {}));
        let result = app.run_until_stopped(CancellationToken::new()).await;
        assert!(
            matches!(result, Err(RunError::TaskStopped("relay"))),
            "{result:?}"
        );

        let app = unstarted()
            .await
            .with_task(BackgroundTask::new("relay", |_stop| async {
                panic!("relay bug")
            }));
        let result = app.run_until_stopped(CancellationToken::new()).await;
        assert!(
            matches!(result, Err(RunError::TaskStopped("relay"))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_named_with_its_error() {
        let other_stopped = Arc::new(AtomicBool::new(false));
        let seen = other_stopped.clone();
        let app = unstarted()
            .await
            .with_task(BackgroundTask::new("purge", move |stop| async move {
                stop.cancelled().await;
                seen.store(true, Ordering::SeqCst);
            }))
            .with_task(BackgroundTask::fallible("inbox", |_stop| async {
                Err(std::io::Error::other("injected"))
            }));
        let result = app.run_until_stopped(CancellationToken::new()).await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, RunError::TaskFailed { task: "inbox", .. }),
            "{error:?}"
        );
        assert_eq!(
            error
                .task_error::<std::io::Error>()
                .map(ToString::to_string),
            Some("injected".to_owned())
        );
        assert!(
            other_stopped.load(Ordering::SeqCst),
            "the other task was stopped and drained"
        );
    }
}
