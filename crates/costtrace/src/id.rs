//! Fast UUIDv7 generation.
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
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use std::time::Instant;

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
/// uniqueness, not secrecy).
fn next_u64() -> u64 {
    STATE
        .try_with(|s| {
            let v = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(v);
            let t = (v as u128).wrapping_mul((v ^ 0xe703_7ed1_a0b4_28db) as u128);
            ((t >> 64) as u64) ^ (t as u64)
        })
        .unwrap_or_else(|_| seed())
}

/// The monotonic clock's zero for this process.
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

/// Re-reads the wall clock against the monotonic clock.
pub(crate) fn refresh_clock() {
    let base = base();
    let mono = Instant::now().duration_since(base).as_micros() as i64;
    OFFSET_MICROS.store(wall_micros() - mono, Ordering::Relaxed);
}

/// One clock read giving both the monotonic instant (for durations) and the
/// wall-clock time in microseconds since the Unix epoch (for timestamps).
pub(crate) fn now() -> (Instant, i64) {
    let base = base();
    let mut offset = OFFSET_MICROS.load(Ordering::Relaxed);
    if offset == i64::MIN {
        refresh_clock();
        offset = OFFSET_MICROS.load(Ordering::Relaxed);
    }
    let i = Instant::now();
    (
        i,
        i.saturating_duration_since(base).as_micros() as i64 + offset,
    )
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    now().1
}

/// A UUIDv7 for a record made at `micros`.
pub(crate) fn v7_at(micros: i64) -> Uuid {
    let ms = (micros / 1000).max(0) as u64;
    let r = next_u64();
    let r2 = next_u64();
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
