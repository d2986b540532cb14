//! Remembers the message of the latest panic on each thread, so that a scope
//! unwound by a panic can record what the panic said.
//!
//! The message is stamped with the time the panic began. An unwind started
//! by `std::panic::resume_unwind` (how rayon and `JoinError::into_panic`
//! re-raise) runs no hook, so the remembered message may belong to an
//! earlier, unrelated panic: a scope or request uses it only when that panic
//! began after the scope or request started.

use std::cell::RefCell;
use std::sync::Once;

use crate::id::{self, Instant};

struct Last {
    message: String,
    at: Instant,
}

thread_local! {
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
}

/// Chains a hook in front of the existing one; idempotent.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Calibrates the clock now rather than inside the hook.
        id::warm_up();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = Instant::now();
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_owned());
            let _ = LAST.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    *l = Some(Last {
                        message: costtrace_core::secrets::redact_text(&msg),
                        at,
                    });
                }
            });
            prev(info);
        }));
    });
}

/// The message of the latest panic on this thread if it began at or after
/// `since` (when the scope or request now unwinding started).
pub(crate) fn message_since(since: Instant) -> Option<String> {
    LAST.try_with(|l| {
        l.try_borrow().ok().and_then(|l| {
            l.as_ref()
                .filter(|l| l.at >= since)
                .map(|l| l.message.clone())
        })
    })
    .ok()
    .flatten()
}

/// `"panicked: <message>"`, or `"panicked"` when no message from a panic
/// that began at or after `since` is known.
pub(crate) fn describe_since(since: Instant) -> String {
    match message_since(since) {
        Some(m) => format!("panicked: {m}"),
        None => "panicked".to_owned(),
    }
}

/// True when a panic hook ran on this thread at or after `since`.
fn began_since(since: Instant) -> bool {
    LAST.try_with(|l| {
        l.try_borrow()
            .ok()
            .is_some_and(|l| l.as_ref().is_some_and(|l| l.at >= since))
    })
    .unwrap_or(false)
}

/// True when the thread is unwinding from a panic that concerns work started
/// at `since`. `std::thread::panicking()` stays true for a whole unwind, so
/// work started and finished by a `Drop` during an unrelated unwind
/// (`panicking_at_start`) counts as panicked only when a new panic began
/// after it started.
#[inline]
pub(crate) fn unwinding_since(panicking_at_start: bool, since: Instant) -> bool {
    std::thread::panicking() && (!panicking_at_start || began_since(since))
}
