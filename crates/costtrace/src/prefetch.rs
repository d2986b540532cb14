//! Asking for cache lines ahead of a write.
//!
//! The recorder thread reads each event's memory on its own core, so the
//! lines that `record` writes next (the next pooled event box, the next ring
//! slot) are usually held by that other core. A store to such a line waits
//! in the store buffer until the line arrives, and an instruction that has
//! to wait for the store buffer to drain then waits for all of them. Asking
//! for the lines with write intent one event ahead lets them arrive while
//! the caller does other work.

/// Asks for the cache lines of `len` bytes at `p` with intent to write.
/// Only a hint: it never faults, whatever the address, and it changes no
/// memory.
#[inline(always)]
pub(crate) fn for_write(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        let mut off = 0;
        while off < len {
            let line = p.wrapping_add(off).cast::<i8>();
            // SAFETY: a prefetch is a hint that neither faults nor reads or
            // writes memory as the program sees it, for any address; SSE
            // (which `_mm_prefetch` is declared with) is part of x86_64's
            // baseline.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_ET0>(line)
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, len);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hint_at_any_address_is_harmless() {
        let v = vec![7u8; 256];
        super::for_write(v.as_ptr(), v.len());
        super::for_write(std::ptr::null(), 256);
        super::for_write(std::ptr::dangling::<u8>().wrapping_add(usize::MAX / 2), 128);
        assert_eq!(v, vec![7u8; 256]);
    }
}
