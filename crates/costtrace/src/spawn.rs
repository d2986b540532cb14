//! Spawning tokio tasks that keep the current context.
//!
//! A bare `tokio::spawn` starts the task with an empty context: tokio knows
//! nothing of costtrace. Use these instead, or attach the context yourself
//! with `tokio::spawn(fut.in_current_context())`.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::FutureExt;

/// `tokio::spawn`, carrying the current context into the task.
///
/// ```
/// # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// # rt.block_on(async {
/// let _req = costtrace::with_context([("tenant_id", "acme")]);
/// let seen = costtrace::spawn(async { costtrace::current().get("tenant_id").map(String::from) });
/// drop(_req);
/// assert_eq!(seen.await.unwrap().as_deref(), Some("acme"));
/// # });
/// ```
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(fut.in_current_context())
}

/// `tokio::task::spawn_blocking`, carrying the current context.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ctx = crate::current();
    tokio::task::spawn_blocking(move || ctx.run(f))
}
