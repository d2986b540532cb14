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

/// The process's fast monotonic clock.
///
/// On x86-64, when the kernel itself times `CLOCK_MONOTONIC` with the CPU's
/// time-stamp counter (its current clocksource is `tsc`, which it chooses
/// only for a counter it found invariant and synchronized across CPUs), the
/// counter is read directly (`rdtsc`) and scaled to nanoseconds by a
/// calibration against the OS clock made once per process. Otherwise
/// `quanta`, which reads the counter where CPUID reports it invariant and
/// falls back to the OS monotonic clock. Virtual machines often hide that
/// CPUID bit while their kernel uses the counter: there `quanta` made every
/// clock read a vDSO `clock_gettime` (18 ns here against 13 ns for
/// `rdtsc`), and a scope reads the clock twice.
enum Clock {
    /// Nanoseconds per tick as a 32.32 fixed-point number.
    Tsc {
        ns_per_tick: u64,
    },
    Quanta(quanta::Clock),
}

impl Clock {
    fn new() -> Clock {
        tsc_clock().unwrap_or_else(|| Clock::Quanta(quanta::Clock::new()))
    }

    #[inline(always)]
    fn raw(&self) -> u64 {
        match self {
            Clock::Tsc { .. } => read_tsc(),
            Clock::Quanta(c) => c.raw(),
        }
    }

    #[inline]
    fn delta_as_nanos(&self, earlier: u64, later: u64) -> u64 {
        match self {
            Clock::Tsc { ns_per_tick } => {
                let ticks = u128::from(later.saturating_sub(earlier));
                u64::try_from((ticks * u128::from(*ns_per_tick)) >> 32).unwrap_or(u64::MAX)
            }
            Clock::Quanta(c) => c.delta_as_nanos(earlier, later),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn read_tsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions and exists on every x86-64 CPU.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// Never called: `Clock::Tsc` is made only on x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn read_tsc() -> u64 {
    0
}

/// The time-stamp counter as a clock, when the kernel uses it as its own.
#[cfg(target_arch = "x86_64")]
fn tsc_clock() -> Option<Clock> {
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .ok()?;
    if source.trim() != "tsc" {
        return None;
    }
    // Two readings of both clocks 5 ms apart. Each OS clock read is
    // bracketed by two counter reads close together (a thread preempted
    // between them would pair the OS time with a later count), so the
    // scale is off by at most ~2,000 ticks in 5 ms (~100 ppm at 3 GHz), in
    // practice by a few ppm.
    let (t0, m0) = paired_reading()?;
    let mut m1 = m0;
    while m1.duration_since(m0) < Duration::from_millis(5) {
        m1 = std::time::Instant::now();
    }
    let (t1, m1) = paired_reading()?;
    let ticks = t1.checked_sub(t0).filter(|&t| t > 0)?;
    let nanos = m1.duration_since(m0).as_nanos();
    let ns_per_tick = u64::try_from((nanos << 32) / u128::from(ticks)).ok()?;
    (ns_per_tick > 0).then_some(Clock::Tsc { ns_per_tick })
}

/// The counter and the OS clock read at (nearly) the same moment: the OS
/// clock read between two counter reads at most [`PAIR_TICKS`] apart, with
/// the counter taken as their midpoint. `None` when no try of 100 gets
/// there (the caller then keeps `quanta`).
#[cfg(target_arch = "x86_64")]
fn paired_reading() -> Option<(u64, std::time::Instant)> {
    /// ~0.7 µs at 3 GHz; the three reads take ~60 ns.
    const PAIR_TICKS: u64 = 2_000;
    (0..100).find_map(|_| {
        let before = read_tsc();
        let os = std::time::Instant::now();
        let after = read_tsc();
        let gap = after.checked_sub(before)?;
        (gap <= PAIR_TICKS).then_some((before + gap / 2, os))
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc_clock() -> Option<Clock> {
    None
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
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
    fn the_counter_is_read_directly_where_the_kernel_times_with_it() {
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .unwrap_or_default();
        let direct = matches!(clock(), Clock::Tsc { .. });
        assert_eq!(
            direct,
            cfg!(target_arch = "x86_64") && source.trim() == "tsc",
            "clocksource {source:?}"
        );
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
