//! One frame's attributes, stored in a single byte buffer.
//!
//! Each attribute is appended as its key, its value, and then both lengths.
//! A length is 4 bytes of 7 bits each (least significant first), so the whole
//! buffer is UTF-8: a reader validates it once and then only slices it. One
//! buffer instead of a vector of string pairs: setting an attribute copies its
//! bytes and nothing else (a `Display` value is formatted straight into the
//! buffer), a frame with 1,000 attributes is one allocation of ~24 KB instead
//! of 48 KB of pairs, and freeing it is one `free`. The lengths follow their
//! strings so that the buffer is read from its end: the newest value of a key
//! is found first, which is the value that wins. Both lengths sit together so
//! that walking back costs one load per attribute (the walk is a chain of
//! dependent loads).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;

/// Buffers up to this size are kept for reuse (see `context::recycle_attrs`).
pub(crate) const POOLED_MAX_CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct AttrBuf {
    /// Always UTF-8 (only `str`s and ASCII lengths are written), but kept as
    /// bytes: writing a length into a `String` costs a check per byte.
    bytes: Vec<u8>,
}

/// Formats into the buffer.
struct Append<'a>(&'a mut Vec<u8>);

impl fmt::Write for Append<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The longest key or value kept (256 MiB); longer ones are cut.
const MAX_TEXT: usize = (1 << 28) - 1;

impl AttrBuf {
    pub(crate) fn with_buffer(mut bytes: Vec<u8>) -> AttrBuf {
        bytes.clear();
        AttrBuf { bytes }
    }

    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    pub(crate) fn reserve(&mut self, additional_attrs: usize) {
        // A guess: short keys and values plus the two lengths.
        self.bytes.reserve(additional_attrs.saturating_mul(24));
    }

    /// The length of the text written since `start`, after cutting it to
    /// [`MAX_TEXT`] bytes.
    #[inline]
    fn text_len(&mut self, start: usize) -> u32 {
        let mut len = self.bytes.len() - start;
        if len > MAX_TEXT {
            // Cut on a character boundary (continuation bytes are 0b10xx_xxxx).
            let mut cut = start + MAX_TEXT;
            while self.bytes.get(cut).is_some_and(|b| b & 0xc0 == 0x80) {
                cut -= 1;
            }
            self.bytes.truncate(cut);
            len = cut - start;
        }
        len as u32
    }

    #[inline]
    fn push_lengths(&mut self, key: u32, value: u32) {
        let both = u64::from(spread(key)) | (u64::from(spread(value)) << 32);
        self.bytes.extend_from_slice(&both.to_le_bytes());
    }

    /// Sets `key` to `value` (a later value for the same key wins).
    #[inline]
    pub(crate) fn push_str(&mut self, key: &str, value: &str) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_bytes());
        let key_len = self.text_len(start);
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value.as_bytes());
        let value_len = self.text_len(start);
        self.push_lengths(key_len, value_len);
    }

    /// Sets `key` to `value` as `Display` writes it. A `Display` that fails
    /// leaves what it wrote before failing.
    #[inline(never)]
    pub(crate) fn push_display(&mut self, key: &str, value: &(impl fmt::Display + ?Sized)) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_bytes());
        let key_len = self.text_len(start);
        let start = self.bytes.len();
        let _ = write!(Append(&mut self.bytes), "{value}");
        let value_len = self.text_len(start);
        self.push_lengths(key_len, value_len);
    }

    /// The attributes, newest first.
    pub(crate) fn iter_rev(&self) -> IterRev<'_> {
        // One validation for the whole buffer (it cannot fail).
        let text = std::str::from_utf8(&self.bytes).unwrap_or_default();
        IterRev {
            text,
            raw: Raw {
                bytes: text.as_bytes(),
                end: text.len(),
            },
        }
    }

    /// The newest value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        let mut raw = Raw {
            bytes: &self.bytes,
            end: self.bytes.len(),
        };
        let (key, last) = (key.as_bytes(), key.as_bytes().last());
        while let Some((k, v)) = raw.next() {
            // Length and last byte first: keys such as `key_1` … `key_999`
            // differ mostly at the end.
            if k.len() == key.len()
                && (key.is_empty() || self.bytes.get(k.end - 1) == last)
                && self.bytes.get(k) == Some(key)
            {
                // Only the answer is validated.
                return std::str::from_utf8(self.bytes.get(v)?).ok();
            }
        }
        None
    }

    /// The number of attributes set (a key set twice counts twice).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.iter_rev().count()
    }
}

impl fmt::Debug for AttrBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pairs: Vec<(&str, &str)> = self.iter_rev().collect();
        pairs.reverse();
        f.debug_list().entries(pairs).finish()
    }
}

/// [`AttrBuf::iter_rev`].
pub(crate) struct IterRev<'a> {
    text: &'a str,
    raw: Raw<'a>,
}

/// Walks a buffer from its end, answering where each key and value are.
struct Raw<'a> {
    bytes: &'a [u8],
    end: usize,
}

/// A length as 4 bytes of 7 bits (each below 0x80, so ASCII).
#[inline]
fn spread(len: u32) -> u32 {
    (len & 0x7f) | ((len << 1) & 0x7f00) | ((len << 2) & 0x7f_0000) | ((len << 3) & 0x7f00_0000)
}

#[inline]
fn unspread(w: u32) -> usize {
    ((w & 0x7f) | ((w >> 1) & 0x3f80) | ((w >> 2) & 0x1f_c000) | ((w >> 3) & 0x0fe0_0000)) as usize
}

impl Raw<'_> {
    /// Where the key and the value of the attribute ending at `self.end` are.
    #[inline]
    fn next(&mut self) -> Option<(Range<usize>, Range<usize>)> {
        let lengths_at = self.end.checked_sub(8)?;
        let both = u64::from_le_bytes(self.bytes.get(lengths_at..self.end)?.try_into().ok()?);
        let value_at = lengths_at.checked_sub(unspread((both >> 32) as u32))?;
        let key_at = value_at.checked_sub(unspread(both as u32))?;
        self.end = key_at;
        Some((key_at..value_at, value_at..lengths_at))
    }
}

impl<'a> Iterator for IterRev<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.raw.next()?;
        Some((self.text.get(k)?, self.text.get(v)?))
    }
}

/// The attributes of a chain of buffers given innermost first, each key once
/// with its innermost (newest) value, sorted by key.
pub(crate) fn flatten<'a>(bufs: impl Iterator<Item = &'a AttrBuf>) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for b in bufs {
        pairs.extend(b.iter_rev());
    }
    // Stable: among equal keys the newest stays first, and `dedup_by` keeps
    // the first.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs.dedup_by(|later, first| later.0 == first.0);
    pairs
}

/// [`flatten`] as owned strings.
pub(crate) fn flatten_owned<'a>(
    bufs: impl Iterator<Item = &'a AttrBuf>,
) -> BTreeMap<String, String> {
    flatten(bufs)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_value_wins_and_order_is_kept() {
        let mut b = AttrBuf::default();
        b.push_str("a", "1");
        b.push_display("b", &2);
        b.push_str("", "");
        b.push_str("a", "3");
        b.push_display("ü", "ß");
        assert_eq!(b.get("a"), Some("3"));
        assert_eq!(b.get("b"), Some("2"));
        assert_eq!(b.get(""), Some(""));
        assert_eq!(b.get("ü"), Some("ß"));
        assert_eq!(b.get("c"), None);
        assert_eq!(b.len(), 5);
        let all: Vec<_> = b.iter_rev().collect();
        assert_eq!(
            all,
            [("ü", "ß"), ("a", "3"), ("", ""), ("b", "2"), ("a", "1")]
        );
    }

    #[test]
    fn flatten_prefers_inner_buffers() {
        let mut outer = AttrBuf::default();
        outer.push_str("k", "outer");
        outer.push_str("o", "1");
        let mut inner = AttrBuf::default();
        inner.push_str("k", "inner");
        inner.push_str("i", "2");
        inner.push_str("k", "inner2");
        let flat = flatten([&inner, &outer].into_iter());
        assert_eq!(flat, [("i", "2"), ("k", "inner2"), ("o", "1")]);
    }

    #[test]
    fn a_failing_display_keeps_the_buffer_readable() {
        struct Fails;
        impl fmt::Display for Fails {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("part")?;
                Err(fmt::Error)
            }
        }
        let mut b = AttrBuf::default();
        b.push_display("x", &Fails);
        b.push_str("y", "1");
        assert_eq!(b.get("x"), Some("part"));
        assert_eq!(b.get("y"), Some("1"));
    }
}
