//! Fetching cache lines ahead of their use.
//!
//! The recorder thread reads each event's memory on its own core, so the
//! lines that `record` uses next (the next pooled event box, the next ring
//! slot, the spent events it frees) are usually held by that other core.
//! A load from such a line stalls, and a store to it waits in the store
//! buffer until the line arrives; an instruction that has to wait for the
//! store buffer to drain then waits for all of them. Fetching the lines one
//! event ahead lets them arrive while the caller does other work.
//!
//! This is a read prefetch (`prefetcht0`): the write-intent form
//! (`prefetchw`, `_MM_HINT_ET0`) is emitted only when the build enables the
//! `prfchw` target feature, which the default x86_64 target does not.

/// Fetches every cache line that the `len` bytes at `p` touch into all
/// cache levels. Only a hint: it never faults, whatever the address, and it
/// changes no memory.
#[inline(always)]
pub(crate) fn lines(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // From the start of `p`'s line to the line of its last byte.
        let misalign = p.addr() & 63;
        let first = p.wrapping_sub(misalign);
        let mut off = 0;
        while off < len + misalign {
            let line = first.wrapping_add(off).cast::<i8>();
            // SAFETY: a prefetch is a hint that neither faults nor reads or
            // writes memory as the program sees it, for any address; SSE
            // (which `_mm_prefetch` is declared with) is part of x86_64's
            // baseline.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line)
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, len);
    }
}

/// Fetches the cache lines of `value` (see [`lines`]).
#[inline(always)]
pub(crate) fn value<T>(value: &T) {
    lines(std::ptr::from_ref(value).cast(), std::mem::size_of::<T>());
}

#[cfg(test)]
mod tests {
    /// A smoke test: prefetching is only a hint, so all that can be checked
    /// is that no address, valid or not, makes it fault or change memory.
    #[test]
    fn a_hint_at_any_address_neither_faults_nor_writes() {
        let v = vec![7u8; 256];
        super::lines(v.as_ptr().wrapping_add(3), v.len() - 3);
        super::lines(std::ptr::null(), 256);
        super::lines(std::ptr::dangling::<u8>().wrapping_add(usize::MAX / 2), 128);
        assert_eq!(v, vec![7u8; 256]);
    }
}
