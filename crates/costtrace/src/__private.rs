//! Support for `#[costtrace::tracked]`. Not a public API: it may change in
//! any release.

use std::borrow::Cow;
use std::fmt::Display;

pub use crate::future::{
    __Scoped as Scoped, __Tracked as Tracked, __scoped as scoped, __tracked as tracked,
    __watched as watched,
};
pub use crate::scope::{ActiveScope, ScopeBuilder, scope};

/// Starts a scope without entering it.
pub fn start(b: ScopeBuilder) -> ActiveScope {
    b.start()
}

/// Calls `f` once. A closure passed here is an `FnOnce` closure (its kind is
/// taken from this bound), so a sync body wrapped in it can return borrows
/// of what it captured, such as `&mut self` (an immediately called closure
/// would be inferred `FnMut` and could not).
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `fut`, whose output is `T`: fixes the output type before it is inspected.
#[inline(always)]
pub fn output_is<T, F: std::future::Future<Output = T>>(fut: F) -> F {
    fut
}

/// Autoref-specialization probe: the most specific impl has the most `&`s.
#[allow(missing_debug_implementations)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Text arguments (`&str`, `String`, `&String`, `Cow<str>` and `Option`s of
/// them): copied as they are, without going through `Display`.
pub trait AttrStr {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str);
}
impl AttrStr for &&&Probe<'_, &str> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        b.set_str(key, self.0)
    }
}
impl AttrStr for &&&Probe<'_, String> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        b.set_str(key, self.0)
    }
}
impl AttrStr for &&&Probe<'_, &String> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        b.set_str(key, self.0)
    }
}
impl AttrStr for &&&Probe<'_, Cow<'_, str>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        b.set_str(key, self.0)
    }
}
impl AttrStr for &&&Probe<'_, Option<&str>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        if let Some(v) = self.0 {
            b.set_str(key, v);
        }
    }
}
impl AttrStr for &&&Probe<'_, Option<String>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        if let Some(v) = self.0 {
            b.set_str(key, v);
        }
    }
}
impl AttrStr for &&&Probe<'_, &Option<String>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        if let Some(v) = self.0 {
            b.set_str(key, v);
        }
    }
}

/// `Option<impl Display>` arguments: set when `Some`.
pub trait AttrOption {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str);
}
impl<T: Display> AttrOption for &&Probe<'_, Option<T>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        if let Some(v) = self.0 {
            b.set(key, v);
        }
    }
}
impl<T: Display> AttrOption for &&Probe<'_, &Option<T>> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        if let Some(v) = self.0 {
            b.set(key, v);
        }
    }
}

/// Any `Display` argument.
pub trait AttrDisplay {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str);
}
impl<T: Display + ?Sized> AttrDisplay for &Probe<'_, T> {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str) {
        b.set(key, self.0)
    }
}

/// Anything else (only for the automatically extracted names).
pub trait AttrNone {
    fn costtrace_attr(&self, b: &mut ScopeBuilder, key: &'static str);
}
impl<T: ?Sized> AttrNone for Probe<'_, T> {
    fn costtrace_attr(&self, _b: &mut ScopeBuilder, _key: &'static str) {}
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
