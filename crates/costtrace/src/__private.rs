//! Support for `#[costtrace::tracked]`. Not a public API: it may change in
//! any release.

use std::fmt::Display;

pub use crate::future::__watched as watched;
pub use crate::scope::{ActiveScope, ScopeBuilder, scope};

/// Starts a scope without entering it.
pub fn start(b: ScopeBuilder) -> ActiveScope {
    b.start()
}

/// Autoref-specialization probe: the most specific impl has the most `&`s.
#[allow(missing_debug_implementations)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// `Option<impl Display>` arguments: set when `Some`.
pub trait AttrOption {
    fn costtrace_attr(&self) -> Option<String>;
}
impl<T: Display> AttrOption for &&Probe<'_, Option<T>> {
    fn costtrace_attr(&self) -> Option<String> {
        self.0.as_ref().map(|v| v.to_string())
    }
}
impl<T: Display> AttrOption for &&Probe<'_, &Option<T>> {
    fn costtrace_attr(&self) -> Option<String> {
        self.0.as_ref().map(|v| v.to_string())
    }
}

/// Any `Display` argument.
pub trait AttrDisplay {
    fn costtrace_attr(&self) -> Option<String>;
}
impl<T: Display + ?Sized> AttrDisplay for &Probe<'_, T> {
    fn costtrace_attr(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

/// Anything else (only for the automatically extracted names).
pub trait AttrNone {
    fn costtrace_attr(&self) -> Option<String>;
}
impl<T: ?Sized> AttrNone for Probe<'_, T> {
    fn costtrace_attr(&self) -> Option<String> {
        None
    }
}

/// `Result<_, impl Display>` return values: the error message.
pub trait OutcomeResult {
    fn costtrace_error(&self) -> Option<String>;
}
impl<T, E: Display> OutcomeResult for &Probe<'_, Result<T, E>> {
    fn costtrace_error(&self) -> Option<String> {
        self.0.as_ref().err().map(|e| e.to_string())
    }
}

/// Any other return value: no error.
pub trait OutcomeOther {
    fn costtrace_error(&self) -> Option<String>;
}
impl<T: ?Sized> OutcomeOther for Probe<'_, T> {
    fn costtrace_error(&self) -> Option<String> {
        None
    }
}

/// Adds a probed attribute.
pub fn attr(b: ScopeBuilder, key: &'static str, value: Option<String>) -> ScopeBuilder {
    b.attr_opt(key, value)
}
