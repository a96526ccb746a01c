//! A long-running part of a service beside its HTTP server (the outbox
//! relay, the inbox, purges), told to stop through a cancellation token;
//! `platform_web::app::App` runs them and drains them in order.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

/// What a background task's failure is carried as.
pub type TaskError = Box<dyn StdError + Send + Sync>;

type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// A long-running part of a service beside its HTTP server, told to stop
/// through the token it is given.
pub struct BackgroundTask {
    name: &'static str,
    start: Box<dyn FnOnce(CancellationToken) -> TaskFuture + Send>,
}

impl BackgroundTask {
    /// A task called `name` that cannot fail, started as `start(stop)`.
    pub fn new<F, Fut>(name: &'static str, start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::fallible(name, move |stop| {
            let run = start(stop);
            async move {
                run.await;
                Ok::<(), std::convert::Infallible>(())
            }
        })
    }

    /// A task called `name`, started as `start(stop)`, whose error stops the service.
    pub fn fallible<F, Fut, E>(name: &'static str, start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        BackgroundTask {
            name,
            start: Box::new(move |stop| {
                let run = start(stop);
                Box::pin(async move { run.await.map_err(|e| Box::new(e) as TaskError) })
            }),
        }
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Starts the task: it runs until `stop` fires and it has drained its work.
    pub fn start(self, stop: CancellationToken) -> impl Future<Output = Result<(), TaskError>> {
        (self.start)(stop)
    }
}

impl std::fmt::Debug for BackgroundTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
