//! Remembers the message of the latest panic on each thread, so that a scope
//! unwound by a panic can record what the panic said.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains a hook in front of the existing one; idempotent.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_owned());
            let _ = LAST.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    *l = Some(costtrace_core::secrets::redact_text(&msg));
                }
            });
            prev(info);
        }));
    });
}

pub(crate) fn last_message() -> Option<String> {
    LAST.try_with(|l| l.try_borrow().ok().and_then(|l| l.clone()))
        .ok()
        .flatten()
}
