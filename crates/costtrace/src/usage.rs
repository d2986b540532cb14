//! `Usage`: one AI call or one use of a paid service, and `record()`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::Duration;

use uuid::Uuid;

use crate::context;
use crate::dispatch::{self, Event, UsageEvent};
use crate::id;

/// One AI call (provider, model, tokens) or one use of a paid non-AI service
/// (service type and named units). Build it, then pass it to [`record`].
///
/// Unknown counts stay unset: an unset count is "unknown", never zero.
///
/// ```
/// use costtrace::Usage;
/// let chat = Usage::llm("openai", "gpt-4o")
///     .operation("chat")
///     .input_tokens(1200)
///     .cache_read_tokens(1000)
///     .output_tokens(300);
/// let pages = Usage::service("file_processor").units("pages", 10);
/// # let _ = (chat, pages);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub(crate) provider: Option<Cow<'static, str>>,
    pub(crate) model: Option<Cow<'static, str>>,
    pub(crate) service_type: Option<Cow<'static, str>>,
    pub(crate) operation: Option<Cow<'static, str>>,
    counts: Counts,
    /// What few calls have (units, duration, error, reported cost, own
    /// attributes): only those pay for the allocation. Keeps the common
    /// usage at ~150 bytes, which matters because `record` writes it on the
    /// caller's core and the recorder reads it on another (every cache
    /// line of it crosses between them).
    more: Option<Box<More>>,
}

/// Token counts, each unknown until set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    values: [u64; 5],
    /// Bit `i` set when `values[i]` is known.
    known: u8,
    partial: bool,
}

const INPUT: usize = 0;
const OUTPUT: usize = 1;
const CACHE_READ: usize = 2;
const CACHE_WRITE: usize = 3;
const REASONING: usize = 4;

impl Counts {
    #[inline]
    fn set(&mut self, i: usize, n: u64) {
        self.values[i] = n;
        self.known |= 1 << i;
    }

    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        (self.known & (1 << i) != 0).then_some(self.values[i])
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct More {
    units: Vec<(Cow<'static, str>, u64)>,
    duration: Option<Duration>,
    error: Option<String>,
    reported_cost_usd: Option<f64>,
    /// Attributes of this call only, on top of the context's.
    attrs: Vec<(Cow<'static, str>, String)>,
}

impl Usage {
    /// An AI model call.
    #[inline]
    pub fn llm(
        provider: impl Into<Cow<'static, str>>,
        model: impl Into<Cow<'static, str>>,
    ) -> Usage {
        Usage {
            provider: Some(provider.into()),
            model: Some(model.into()),
            ..Usage::default()
        }
    }

    /// A paid non-AI service use, priced per unit (seed 004: `file_processor`
    /// per page, `transformer` per chunk).
    #[inline]
    pub fn service(service_type: impl Into<Cow<'static, str>>) -> Usage {
        Usage {
            service_type: Some(service_type.into()),
            ..Usage::default()
        }
    }

    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// What kind of call: `chat`, `embedding`, `responses`, …
    #[inline]
    pub fn operation(mut self, op: impl Into<Cow<'static, str>>) -> Self {
        self.operation = Some(op.into());
        self
    }

    /// All prompt tokens, cached ones included.
    #[inline]
    pub fn input_tokens(mut self, n: u64) -> Self {
        self.counts.set(INPUT, n);
        self
    }

    #[inline]
    pub fn output_tokens(mut self, n: u64) -> Self {
        self.counts.set(OUTPUT, n);
        self
    }

    /// Prompt tokens read from the provider's cache (a part of `input_tokens`).
    #[inline]
    pub fn cache_read_tokens(mut self, n: u64) -> Self {
        self.counts.set(CACHE_READ, n);
        self
    }

    /// Prompt tokens written to the provider's cache (a part of `input_tokens`).
    #[inline]
    pub fn cache_write_tokens(mut self, n: u64) -> Self {
        self.counts.set(CACHE_WRITE, n);
        self
    }

    /// Reasoning tokens (a part of `output_tokens`).
    #[inline]
    pub fn reasoning_tokens(mut self, n: u64) -> Self {
        self.counts.set(REASONING, n);
        self
    }

    /// Prompt tokens written to the cache with a 1-hour lifetime (a part of
    /// `cache_write_tokens`, priced at the 1-hour rate). Kept as the unit
    /// [`costtrace_core::token_units::CACHE_WRITE_1H`].
    pub fn cache_write_1h_tokens(self, n: u64) -> Self {
        self.units(costtrace_core::token_units::CACHE_WRITE_1H, n)
    }

    /// Audio prompt tokens (a part of `input_tokens`, priced at the audio
    /// rate). Kept as the unit [`costtrace_core::token_units::INPUT_AUDIO`].
    pub fn input_audio_tokens(self, n: u64) -> Self {
        self.units(costtrace_core::token_units::INPUT_AUDIO, n)
    }

    /// Audio output tokens (a part of `output_tokens`, priced at the audio
    /// rate). Kept as the unit [`costtrace_core::token_units::OUTPUT_AUDIO`].
    pub fn output_audio_tokens(self, n: u64) -> Self {
        self.units(costtrace_core::token_units::OUTPUT_AUDIO, n)
    }

    /// A named unit count for a service: `.units("pages", 10)`. Repeating a
    /// unit name replaces its count.
    pub fn units(mut self, name: impl Into<Cow<'static, str>>, n: u64) -> Self {
        let name = name.into();
        let units = &mut self.more().units;
        match units.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = n,
            None => units.push((name, n)),
        }
        self
    }

    pub fn duration(mut self, d: Duration) -> Self {
        self.more().duration = Some(d);
        self
    }

    /// The call failed with `msg` (credentials in it are redacted).
    pub fn error(mut self, msg: impl Into<String>) -> Self {
        self.more().error = Some(msg.into());
        self
    }

    /// A cost reported by the provider itself; kept instead of the catalogue's.
    pub fn cost_usd(mut self, usd: f64) -> Self {
        self.more().reported_cost_usd = Some(usd);
        self
    }

    /// The counts are known to be incomplete (for example a stream cut short).
    #[inline]
    pub fn partial(mut self, yes: bool) -> Self {
        self.counts.partial = yes;
        self
    }

    /// An attribute of this call only (e.g. `http_status`), set on top of the
    /// context's attributes; the secrets guard applies to it as to them.
    /// Repeating a key replaces its value.
    ///
    /// ```
    /// let cap = costtrace::testing::capture();
    /// costtrace::record(costtrace::Usage::llm("openai", "gpt-4o").error("rate limited").attr("http_status", 429));
    /// assert_eq!(cap.usages()[0].attrs["http_status"], "429");
    /// ```
    pub fn attr(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl std::fmt::Display,
    ) -> Self {
        let key = key.into();
        let value = crate::attrs::display_string(&value);
        let attrs = &mut self.more().attrs;
        match attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => attrs.push((key, value)),
        }
        self
    }

    pub(crate) fn input(&self) -> Option<u64> {
        self.counts.get(INPUT)
    }

    pub(crate) fn output(&self) -> Option<u64> {
        self.counts.get(OUTPUT)
    }

    pub(crate) fn cache_read(&self) -> Option<u64> {
        self.counts.get(CACHE_READ)
    }

    pub(crate) fn cache_write(&self) -> Option<u64> {
        self.counts.get(CACHE_WRITE)
    }

    pub(crate) fn reasoning(&self) -> Option<u64> {
        self.counts.get(REASONING)
    }

    pub(crate) fn is_partial(&self) -> bool {
        self.counts.partial
    }

    pub(crate) fn unit_counts(&self) -> &[(Cow<'static, str>, u64)] {
        self.more.as_ref().map_or(&[], |m| &m.units)
    }

    pub(crate) fn duration_value(&self) -> Option<Duration> {
        self.more.as_ref().and_then(|m| m.duration)
    }

    pub(crate) fn error_message(&self) -> Option<&str> {
        self.more.as_ref().and_then(|m| m.error.as_deref())
    }

    pub(crate) fn reported_cost(&self) -> Option<f64> {
        self.more.as_ref().and_then(|m| m.reported_cost_usd)
    }

    pub(crate) fn own_attrs(&self) -> &[(Cow<'static, str>, String)] {
        self.more.as_ref().map_or(&[], |m| &m.attrs)
    }
}

thread_local! {
    /// Allocations of this thread's spent usage events, handed back by the
    /// recorder, reused by the next `record` here: they come back a batch at
    /// a time, more than glibc's per-thread cache keeps, so freeing and
    /// allocating them again took its slow paths (`_int_free`,
    /// `_int_malloc`: over a quarter of `record`'s instructions).
    // The boxes themselves are what is reused (clippy's `vec_box` assumes
    // the contents are).
    #[allow(clippy::vec_box)]
    static EVENT_POOL: RefCell<Vec<Box<UsageEvent>>> = const { RefCell::new(Vec::new()) };
}

const EVENT_POOL_MAX: usize = 256;

/// A pooled event box, when there is one. The next one is fetched into
/// the cache ahead of its use (see [`crate::prefetch`]).
fn pooled_event() -> Option<Box<UsageEvent>> {
    EVENT_POOL
        .try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let b = p.pop();
            if let Some(next) = p.last() {
                crate::prefetch::value::<UsageEvent>(next);
            }
            b
        })
        .ok()
        .flatten()
}

/// Keeps a spent usage event's allocation for reuse on this thread; the
/// rest is overwritten on reuse.
///
/// Its frame is released now (it may hold a chain of ended scopes), unless
/// it is the thread's current context: then the box keeps its reference,
/// and the next `record` in that context that takes this box needs no
/// reference-count update at all. Those updates are locked instructions,
/// and a locked instruction waits for every earlier store to complete:
/// here, stores into boxes and ring slots the recorder read last, which
/// miss the cache. In a loop of records they made `record` take twice as
/// long in some runs as in others (docs/benchmarks.md). A frame kept this
/// way outlives its context only in boxes pooled while it was current,
/// until they are reused or the thread exits; and a scope whose boxes came
/// back while it ran finds its frame shared when it ends, and is sent to
/// the recorder as the shared frame rather than taken apart.
pub(crate) fn recycle_event(mut ev: Box<UsageEvent>) {
    if !ev.frame.as_ref().is_some_and(context::is_current_frame)
        && let Some(f) = ev.frame.take()
    {
        context::recycle_frame(f);
    }
    let full = EVENT_POOL
        .try_with(|p| match p.try_borrow_mut() {
            Ok(mut p) if p.len() < EVENT_POOL_MAX => {
                p.push(ev);
                None
            }
            _ => Some(ev),
        })
        .ok()
        .flatten();
    // Not kept: its frame still goes back to the frame pool.
    if let Some(mut ev) = full
        && let Some(f) = ev.frame.take()
    {
        context::recycle_frame(f);
    }
}

/// Records one usage, stamped with the current context, scope, pricing tier
/// and environment. Returns the record's id.
///
/// Never blocks on I/O and never panics: the record is queued for the
/// recorder's background thread, which prices and writes it. With no recorder
/// installed (no [`crate::init`], no capture) it does nothing.
#[inline]
pub fn record(usage: Usage) -> Uuid {
    // Inlined into the caller, so that the usage is copied once, from where
    // the caller built it straight into its box (a `memcpy`: 152 bytes):
    // passed down by value, it was copied again on the way. Each copy reads
    // with wide loads over the narrow stores that built it, and such a load
    // waits for every earlier store to complete, here stores into the box
    // and the ring slot the recorder read last (cache misses); in a loop of
    // records that doubled `record`'s cost in some runs (docs/benchmarks.md).
    match usage_box() {
        Some(mut ev) => {
            ev.usage = usage;
            send_usage(ev)
        }
        None => id::v7_at(id::now_micros()),
    }
}

/// A box for the next usage event, holding the current frame, or `None`
/// when there is nowhere to send it (no recorder, no capture): then nothing
/// is cloned, boxed or taken from the pool.
///
/// Boxed in an allocation this thread used before, when there is one, so
/// that the event carries a pointer rather than copies of the usage. The
/// box may already hold the current frame (see `recycle_event`): then
/// nothing is cloned.
#[inline(never)]
fn usage_box() -> Option<Box<UsageEvent>> {
    let mut released = None;
    let ev = context::with_current(|ctx| {
        if !dispatch::enabled(ctx.dispatch()) {
            return None;
        }
        Some(match pooled_event() {
            Some(mut b) => {
                if !context::same_frame(b.frame.as_ref(), ctx.frame.as_ref()) {
                    released = std::mem::replace(&mut b.frame, ctx.frame.clone());
                }
                b
            }
            None => UsageEvent::unstamped(ctx.frame.clone()),
        })
    });
    if let Some(f) = released {
        context::recycle_frame(f);
    }
    ev
}

/// Stamps `ev` (its usage and frame in place) and queues it.
#[inline(never)]
fn send_usage(mut ev: Box<UsageEvent>) -> Uuid {
    let micros = id::now_micros();
    let id = id::v7_at(micros);
    ev.id = id;
    ev.micros = micros;
    // The frame's dispatch is the current context's: the box holds the
    // current frame.
    let d = ev.frame.as_ref().and_then(|f| f.dispatch.clone());
    // Built where it is stored: an `Event` made here and passed on was
    // copied with wide loads over the narrow stores that had just written it
    // (a store-forwarding stall, 80 % of `send`'s samples in `perf`).
    dispatch::send_with(d.as_ref(), 0, move || Event::Usage(ev));
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::context::FrameRef;

    fn pool_push(b: Box<UsageEvent>) {
        EVENT_POOL.with(|p| p.borrow_mut().push(b));
    }

    fn current_frame() -> FrameRef {
        context::with_current(|c| c.frame.clone()).unwrap()
    }

    #[test]
    fn a_spent_event_keeps_its_frame_only_while_it_is_the_current_context() {
        let _cap = crate::testing::capture();
        let outer = crate::scope("outer").enter();
        let f = current_frame();
        recycle_event(UsageEvent::unstamped(Some(f.clone())));
        let b = pooled_event().unwrap();
        assert!(b.frame.as_ref().is_some_and(|g| FrameRef::ptr_eq(g, &f)));
        // Inside a nested scope, `f` is no longer current: it is let go.
        // (While the nested scope is pending, with no frame of its own yet,
        // its parent's frame is still the current one.)
        {
            let _inner = crate::scope("inner").enter();
            let _ = crate::current();
            recycle_event(b);
            assert!(pooled_event().unwrap().frame.is_none());
        }
        recycle_event(UsageEvent::unstamped(Some(f.clone())));
        drop(outer);
        // Its scope has ended: the box already pooled still holds it, one
        // that comes back now does not.
        let kept = pooled_event().unwrap();
        assert!(kept.frame.as_ref().is_some_and(|g| FrameRef::ptr_eq(g, &f)));
        recycle_event(UsageEvent::unstamped(Some(f.clone())));
        assert!(pooled_event().unwrap().frame.is_none());
        drop(kept);
        assert!(FrameRef::is_unique(&f));
    }

    #[test]
    fn a_pooled_box_is_given_the_current_frame_and_kept_one_is_not_cloned_again() {
        let _cap = crate::testing::capture();
        let a = crate::scope("a").enter();
        let fa = current_frame();
        let b = crate::scope("b").enter();
        let fb = current_frame();
        // A box holding `a`'s frame, taken under `b`: it gets `b`'s frame
        // and lets `a`'s go.
        pool_push(UsageEvent::unstamped(Some(fa.clone())));
        let before = FrameRef::count(&fa);
        let ev = usage_box().unwrap();
        assert!(ev.frame.as_ref().is_some_and(|g| FrameRef::ptr_eq(g, &fb)));
        assert_eq!(FrameRef::count(&fa), before - 1);
        // A box that already holds `b`'s frame keeps that very reference.
        pool_push(ev);
        let before = FrameRef::count(&fb);
        let ev = usage_box().unwrap();
        assert!(ev.frame.as_ref().is_some_and(|g| FrameRef::ptr_eq(g, &fb)));
        assert_eq!(FrameRef::count(&fb), before);
        drop((ev, b, a));
    }

    #[test]
    fn with_nowhere_to_send_the_pool_is_left_alone() {
        pool_push(UsageEvent::unstamped(None));
        assert!(usage_box().is_none());
        assert_eq!(EVENT_POOL.with(|p| p.borrow().len()), 1);
    }

    #[test]
    fn the_common_usage_stays_small() {
        // `record` copies it and the recorder reads it on another core.
        assert!(std::mem::size_of::<Usage>() <= 160);
    }

    #[test]
    fn every_field_reaches_the_record_and_unset_counts_stay_unknown() {
        let cap = crate::testing::capture();
        record(
            Usage::llm("openai", "gpt-4o")
                .operation("chat")
                .input_tokens(1200)
                .cache_read_tokens(1000)
                .cache_write_tokens(0)
                .output_tokens(300)
                .reasoning_tokens(7)
                .units("images", 2)
                .units("images", 3)
                .duration(Duration::from_millis(1500))
                .error("rate limited")
                .partial(true)
                .attr("http_status", 429),
        );
        record(Usage::service("file_processor").units("pages", 10));
        let u = cap.usages();
        assert_eq!(u.len(), 2);
        let a = &u[0];
        assert_eq!(a.provider.as_deref(), Some("openai"));
        assert_eq!(a.operation.as_deref(), Some("chat"));
        assert_eq!(a.input_tokens, Some(1200));
        assert_eq!(a.cache_read_tokens, Some(1000));
        assert_eq!(a.cache_write_tokens, Some(0));
        assert_eq!(a.output_tokens, Some(300));
        assert_eq!(a.reasoning_tokens, Some(7));
        assert_eq!(a.units.get("images"), Some(&3));
        assert_eq!(a.duration_ms, Some(1500.0));
        assert_eq!(a.error_message.as_deref(), Some("rate limited"));
        assert!(a.partial);
        assert_eq!(a.attrs["http_status"], "429");
        let b = &u[1];
        assert_eq!(b.service_type.as_deref(), Some("file_processor"));
        assert_eq!(b.units.get("pages"), Some(&10));
        assert_eq!(b.input_tokens, None);
        assert_eq!(b.output_tokens, None);
        assert_eq!(b.duration_ms, None);
        assert!(!b.partial);
    }
}
