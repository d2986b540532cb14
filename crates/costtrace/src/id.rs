//! Fast UUIDv7 generation and the clock scopes and records are timed with.
//!
//! `Uuid::now_v7()` takes a process-wide lock to keep ids monotonic; scopes are
//! created on hot paths in many threads at once, so we build the same RFC 9562
//! layout from the wall clock and a per-thread generator seeded from the
//! operating system's randomness. Ids are unique (74 random bits per
//! millisecond) and time-ordered to the millisecond, which is what the stores
//! need for their indexes.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is seeded from the OS once per process and varied per
    // instance; mix in the thread id so threads never share a sequence.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.write(format!("{:?}", std::thread::current().id()).as_bytes());
    h.finish() | 1
}

/// wyrand: fast, statistically solid, not for cryptography (ids need
/// uniqueness, not secrecy). Two outputs per call: one thread-local access
/// per id.
#[inline]
fn next_pair() -> (u64, u64) {
    #[inline(always)]
    fn step(v: u64) -> u64 {
        let t = (v as u128).wrapping_mul((v ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }
    STATE
        .try_with(|s| {
            let a = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            let b = a.wrapping_add(0xa076_1d64_78bd_642f);
            s.set(b);
            (step(a), step(b))
        })
        .unwrap_or_else(|_| (seed(), seed()))
}

/// The process's fast monotonic clock: the CPU's time-stamp counter where it
/// is invariant (x86-64; the counter register on aarch64), scaled to
/// nanoseconds by a calibration against the OS monotonic clock made once per
/// process; elsewhere the OS monotonic clock itself (`quanta`). Reading the
/// counter costs about half of `std::time::Instant::now()` (a vDSO call with
/// its own conversions), and a scope reads the clock twice.
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now (a few milliseconds, once per process), so that
/// the first scope does not pay for it. Called when a recorder starts.
pub(crate) fn warm_up() {
    let _ = clock();
    let _ = base();
}

/// A point in time on [`clock`]: raw counter ticks, converted to
/// nanoseconds only when a duration is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(u64);

impl Instant {
    /// The clock's zero, a placeholder.
    pub(crate) const ZERO: Instant = Instant(0);

    #[inline]
    pub(crate) fn now() -> Instant {
        Instant(clock().raw())
    }

    /// Time since `earlier` (zero if `earlier` is later).
    #[inline]
    pub(crate) fn duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(clock().delta_as_nanos(earlier.0, self.0))
    }

    /// Time since this instant.
    #[inline]
    pub(crate) fn elapsed(self) -> Duration {
        Instant::now().duration_since(self)
    }
}

/// The clock's zero for this process.
static BASE: OnceLock<Instant> = OnceLock::new();
/// Wall-clock microseconds minus monotonic microseconds since [`BASE`].
/// Refreshed by the recorder thread on every tick, so NTP adjustments of the
/// wall clock reach timestamps within one flush interval.
static OFFSET_MICROS: AtomicI64 = AtomicI64::new(i64::MIN);

fn wall_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(_) => 0,
    }
}

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Microseconds from [`BASE`] to `i`.
#[inline]
fn mono_micros(base: Instant, i: Instant) -> i64 {
    (clock().delta_as_nanos(base.0, i.0) / 1000) as i64
}

/// Re-reads the wall clock against the monotonic clock.
pub(crate) fn refresh_clock() {
    let base = base();
    let mono = mono_micros(base, Instant::now());
    OFFSET_MICROS.store(wall_micros() - mono, Ordering::Relaxed);
}

/// One clock read giving both the monotonic instant (for durations) and the
/// wall-clock time in microseconds since the Unix epoch (for timestamps).
#[inline]
pub(crate) fn now() -> (Instant, i64) {
    let base = base();
    let mut offset = OFFSET_MICROS.load(Ordering::Relaxed);
    if offset == i64::MIN {
        refresh_clock();
        offset = OFFSET_MICROS.load(Ordering::Relaxed);
    }
    let i = Instant::now();
    (i, mono_micros(base, i) + offset)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    now().1
}

/// A UUIDv7 for a record made at `micros`.
pub(crate) fn v7_at(micros: i64) -> Uuid {
    let ms = (micros / 1000).max(0) as u64;
    let (r, r2) = next_pair();
    let hi: u64 = (ms << 16) | 0x7000 | (r & 0x0fff);
    let lo: u64 = (r2 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    Uuid::from_u64_pair(hi, lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_wall_clock_matches_the_system_clock() {
        let derived = now_micros();
        let direct = wall_micros();
        assert!((derived - direct).abs() < 50_000, "{derived} vs {direct}");
    }

    #[test]
    fn durations_follow_the_os_clock() {
        let (a, _) = now();
        let s = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let ours = a.elapsed();
        let os = s.elapsed();
        assert!(ours >= Duration::from_millis(19), "{ours:?}");
        let diff = ours.abs_diff(os);
        assert!(diff < Duration::from_millis(5), "{ours:?} vs {os:?}");
        let later = Instant::now();
        assert_eq!(a.duration_since(later), Duration::ZERO);
    }

    #[test]
    fn ids_are_v7_unique_and_time_ordered() {
        let t = now_micros();
        let mut seen = std::collections::HashSet::new();
        let mut last = Uuid::nil();
        for i in 0..10_000 {
            let id = v7_at(t + i * 1000);
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(id > last, "ids must sort by time");
            last = id;
            assert!(seen.insert(id));
        }
        let (secs, _) = last.get_timestamp().unwrap().to_unix();
        assert_eq!(secs as i64, (t + 9_999_000) / 1_000_000);
    }
}
