//! Support for `#[costtrace::tracked]`. Not a public API: it may change in
//! any release.

use std::borrow::Cow;
use std::fmt::Display;

use compact_str::{CompactString, ToCompactString};

pub use crate::future::__watched as watched;
pub use crate::scope::{ActiveScope, ScopeBuilder, scope};

/// Starts a scope without entering it.
pub fn start(b: ScopeBuilder) -> ActiveScope {
    b.start()
}

/// Autoref-specialization probe: the most specific impl has the most `&`s.
#[allow(missing_debug_implementations)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// An attribute value as the scope stores it.
pub type Value = CompactString;

/// Text arguments (`&str`, `String`, `&String`, `Cow<str>` and `Option`s of
/// them): copied as they are, without going through `Display`.
pub trait AttrStr {
    fn costtrace_attr(&self) -> Option<Value>;
}
impl AttrStr for &&&Probe<'_, &str> {
    fn costtrace_attr(&self) -> Option<Value> {
        Some(CompactString::new(self.0))
    }
}
impl AttrStr for &&&Probe<'_, String> {
    fn costtrace_attr(&self) -> Option<Value> {
        Some(CompactString::new(self.0))
    }
}
impl AttrStr for &&&Probe<'_, &String> {
    fn costtrace_attr(&self) -> Option<Value> {
        Some(CompactString::new(self.0))
    }
}
impl AttrStr for &&&Probe<'_, Cow<'_, str>> {
    fn costtrace_attr(&self) -> Option<Value> {
        Some(CompactString::new(self.0))
    }
}
impl AttrStr for &&&Probe<'_, Option<&str>> {
    fn costtrace_attr(&self) -> Option<Value> {
        self.0.map(CompactString::new)
    }
}
impl AttrStr for &&&Probe<'_, Option<String>> {
    fn costtrace_attr(&self) -> Option<Value> {
        self.0.as_deref().map(CompactString::new)
    }
}
impl AttrStr for &&&Probe<'_, &Option<String>> {
    fn costtrace_attr(&self) -> Option<Value> {
        self.0.as_deref().map(CompactString::new)
    }
}

/// `Option<impl Display>` arguments: set when `Some`.
pub trait AttrOption {
    fn costtrace_attr(&self) -> Option<Value>;
}
impl<T: Display> AttrOption for &&Probe<'_, Option<T>> {
    fn costtrace_attr(&self) -> Option<Value> {
        self.0.as_ref().map(|v| v.to_compact_string())
    }
}
impl<T: Display> AttrOption for &&Probe<'_, &Option<T>> {
    fn costtrace_attr(&self) -> Option<Value> {
        self.0.as_ref().map(|v| v.to_compact_string())
    }
}

/// Any `Display` argument.
pub trait AttrDisplay {
    fn costtrace_attr(&self) -> Option<Value>;
}
impl<T: Display + ?Sized> AttrDisplay for &Probe<'_, T> {
    fn costtrace_attr(&self) -> Option<Value> {
        Some(self.0.to_compact_string())
    }
}

/// Anything else (only for the automatically extracted names).
pub trait AttrNone {
    fn costtrace_attr(&self) -> Option<Value>;
}
impl<T: ?Sized> AttrNone for Probe<'_, T> {
    fn costtrace_attr(&self) -> Option<Value> {
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
#[inline]
pub fn attr(b: ScopeBuilder, key: &'static str, value: Option<Value>) -> ScopeBuilder {
    match value {
        Some(v) => b.attr_value(CompactString::const_new(key), v),
        None => b,
    }
}
