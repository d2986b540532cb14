//! # costtrace
//!
//! Know what every AI call and every paid service costs, and who it was for:
//! which tenant, user, job, batch, task, request and document.
//!
//! ```
//! use costtrace::{scope, record, Usage};
//!
//! let cap = costtrace::testing::capture(); // in an application: `let _g = costtrace::init()?;`
//! {
//!     let _job = scope("receipt_processing").attr("job_id", "job-123").enter();
//!     record(Usage::llm("openai", "gpt-4o").operation("chat").input_tokens(900).output_tokens(120));
//! }
//! let usage = &cap.usages()[0];
//! assert_eq!(usage.attrs["job_id"], "job-123");
//! assert_eq!(usage.model.as_deref(), Some("gpt-4o"));
//! ```
//!
//! ## How context travels
//! - **Synchronous code**: a thread-local. [`ScopeBuilder::enter`] and
//!   [`with_context`] return guards that restore the previous context when
//!   dropped, also during a panic.
//! - **Async code**: [`FutureExt::in_scope`] and
//!   [`FutureExt::in_current_context`] re-enter the context on every poll, so
//!   concurrent tasks never see each other's context.
//! - **New tasks and threads**: [`spawn`] and [`spawn_blocking`] carry the
//!   current context into tokio tasks; [`Context::wrap`] into threads and
//!   pools. A bare `tokio::spawn` or `std::thread::spawn` starts with an
//!   **empty** context.
//!
//! ## Records
//! Scopes and usage become [`Record`]s (see `costtrace-core` for the wire
//! format), written by a background recorder installed with [`init`]. The
//! secrets guard redacts attribute values whose key names a credential
//! (`api_key`, `password`, `token`, `authorization`, …) and values that look
//! like one (`sk-…`, `Bearer …`): the key is kept, the value becomes
//! `[REDACTED]` (see [`costtrace_core::secrets`]).
//!
//! ## Delivery
//! When the sink fails, batches go (fsynced) to a local spool and are
//! replayed in order once it works again; after a failure the recorder backs
//! off (1 s doubling to 30 s) and spools without trying the sink meanwhile,
//! so a hanging sink never stalls it for long. [`flush`] is an
//! [`Error::NotDelivered`] while records are only in memory (no spool, or
//! the spool cannot be written). A record the destination can never accept
//! (e.g. one too large for the server) is counted in
//! [`RecorderHealth::rejected`], logged by id and skipped. Sink URLs appear
//! in logs, errors and `Debug` with their passwords hidden.

mod attrs;
mod context;
mod dispatch;
mod error;
mod future;
mod http_sink;
mod id;
#[cfg(feature = "axum")]
pub mod layer;
mod materialize;
mod panic;
mod prefetch;
#[path = "pricing.rs"]
mod pricer;
mod recorder;
mod request;
#[cfg(feature = "axum")]
pub use layer::CosttraceLayer;
mod scope;
pub mod sink;
pub use http_sink::HttpSink;
#[cfg(feature = "tokio")]
mod spawn;
mod spool;
#[cfg(feature = "store")]
mod store_sink;
#[cfg(feature = "store")]
pub use store_sink::StoreSink;
pub mod testing;
mod usage;

#[doc(hidden)]
pub mod __private;

pub use context::{Context, ContextGuard, clear_context, current, get_context, with_context};
pub use costtrace_core::{
    Environment, ItemError, PricingTier, Record, RequestRecord, ScopeRecord, UsageRecord,
};
pub use costtrace_macros::tracked;
/// The pricing engine (re-exported).
pub use costtrace_pricing as pricing;
pub use error::Error;
pub use future::{FutureExt, InScope, WithContext};
pub use recorder::{
    Config, InitGuard, QueuePolicy, RecorderHealth, flush, flush_timeout, health, init,
};
pub use request::{ActiveRequest, RequestBuilder, request};
pub use scope::{
    ActiveScope, ScopeBuilder, ScopeGuard, ScopeHandle, batch_scope, current_scope, scope,
};
#[cfg(feature = "tokio")]
pub use spawn::{spawn, spawn_blocking};
pub use usage::{Usage, record};
