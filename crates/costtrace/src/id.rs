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
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Microseconds since the Unix epoch, from the wall clock.
pub(crate) fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(_) => 0,
    }
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
