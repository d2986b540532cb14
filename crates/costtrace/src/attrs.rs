//! One frame's attributes, stored in a single `String`.
//!
//! Each attribute is appended as its key, its value, and then both lengths,
//! each length as one `char` (its code point is the length, skipping the
//! surrogate range; a length below 128 is one byte). One buffer instead of a
//! vector of string pairs: setting an attribute copies its bytes and nothing
//! else (a `Display` value is formatted straight into the buffer), a frame
//! with 1,000 attributes is one allocation of ~18 KB instead of 48 KB of
//! pairs, and freeing it is one `free`. Being a `String`, it is read by
//! slicing, with no UTF-8 validation. The lengths follow their strings so that
//! the buffer is read from its end: the newest value of a key is found first,
//! which is the value that wins.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;

/// Buffers up to this size are kept for reuse (see `context::recycle_attrs`).
pub(crate) const POOLED_MAX_CAPACITY: usize = 1024;

/// One larger buffer, up to this size, is kept per thread (see
/// `context::large_attr_buffer`): enough for ~3,500 short attributes, and
/// at most 64 KiB held by each thread that ever built a scope that large.
pub(crate) const LARGE_MAX_CAPACITY: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct AttrBuf {
    text: String,
}

/// The longest key or value kept (1 MiB and a bit: the code points left
/// after the surrogates); longer ones are cut on a character boundary.
const MAX_TEXT: usize = 0x10_FFFF - 0x800;

/// A length (at most [`MAX_TEXT`]) as a `char`.
#[inline]
fn len_char(len: usize) -> char {
    let n = len as u32;
    let n = if n < 0xD800 { n } else { n + 0x800 };
    char::from_u32(n).unwrap_or('\0')
}

#[inline]
fn char_len(c: char) -> usize {
    let n = c as u32;
    (if n < 0xD800 { n } else { n - 0x800 }) as usize
}

impl AttrBuf {
    pub(crate) const EMPTY: AttrBuf = AttrBuf {
        text: String::new(),
    };

    pub(crate) fn with_buffer(mut text: String) -> AttrBuf {
        text.clear();
        AttrBuf { text }
    }

    pub(crate) fn into_buffer(self) -> String {
        self.text
    }

    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity()
    }

    pub(crate) fn reserve(&mut self, additional_attrs: usize) {
        // A guess: short keys and values plus the two lengths.
        self.reserve_bytes(additional_attrs.saturating_mul(20));
    }

    /// Room for `additional` more bytes.
    #[inline(always)]
    fn reserve_bytes(&mut self, additional: usize) {
        if self.text.capacity() - self.text.len() < additional {
            self.grow(additional);
        }
    }

    /// Moves into the thread's spare large buffer when it has room for
    /// `additional` more bytes, else grows as a `String` does.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let need = self.text.len().saturating_add(additional);
        if need > POOLED_MAX_CAPACITY
            && let Some(mut large) = crate::context::large_attr_buffer(need)
        {
            large.push_str(&self.text);
            let small = std::mem::replace(&mut self.text, large);
            crate::context::recycle_attrs(AttrBuf::with_buffer(small));
            return;
        }
        self.text.reserve(additional);
    }

    /// The length of the text written since `start`, after cutting it to
    /// [`MAX_TEXT`] bytes.
    #[inline]
    fn text_len(&mut self, start: usize) -> usize {
        let len = self.text.len() - start;
        if len <= MAX_TEXT {
            return len;
        }
        let mut cut = start + MAX_TEXT;
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.truncate(cut);
        cut - start
    }

    #[inline]
    fn push_lengths(&mut self, key: usize, value: usize) {
        for len in [key, value] {
            if len < 0x80 {
                // One byte, the common case (and known to be so here).
                self.text.push(char::from(len as u8));
            } else {
                self.text.push(len_char(len));
            }
        }
    }

    /// Sets `key` to `value` (a later value for the same key wins).
    #[inline]
    pub(crate) fn push_str(&mut self, key: &str, value: &str) {
        if key.len() < 0x80 && value.len() < 0x80 {
            // The common case: no cut, one byte per length, one capacity
            // check.
            self.reserve_bytes(key.len() + value.len() + 2);
            if append_short(&mut self.text, key, value) {
                return;
            }
        }
        self.push_str_long(key, value);
    }

    #[inline(never)]
    fn push_str_long(&mut self, key: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_len = self.text_len(start);
        let start = self.text.len();
        self.text.push_str(value);
        let value_len = self.text_len(start);
        self.push_lengths(key_len, value_len);
    }

    /// Sets `key` to `value` as `Display` writes it. A `Display` that fails
    /// leaves what it wrote before failing.
    #[inline]
    pub(crate) fn push_display<V: fmt::Display + ?Sized>(&mut self, key: &str, value: &V) {
        match as_text(value) {
            Some(text) => self.push_str(key, text),
            None => self.push_formatted(key, value),
        }
    }

    #[inline(never)]
    fn push_formatted(&mut self, key: &str, value: &(impl fmt::Display + ?Sized)) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_len = self.text_len(start);
        let start = self.text.len();
        let _ = write!(self.text, "{value}");
        let value_len = self.text_len(start);
        self.push_lengths(key_len, value_len);
    }

    /// The attributes, newest first.
    pub(crate) fn iter_rev(&self) -> IterRev<'_> {
        iter_text_rev(&self.text)
    }

    /// The buffer's text (see [`iter_text_rev`]).
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The newest value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        let mut raw = Raw {
            text: &self.text,
            end: self.text.len(),
        };
        let bytes = self.text.as_bytes();
        let (key, last) = (key.as_bytes(), key.as_bytes().last());
        while let Some((k, v)) = raw.next() {
            // Length and last byte first: keys such as `key_1` … `key_999`
            // differ mostly at the end.
            if k.len() == key.len()
                && (key.is_empty() || bytes.get(k.end - 1) == last)
                && bytes.get(k) == Some(key)
            {
                return self.text.get(v);
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

/// Appends `key`, `value` and their lengths (each as one byte) to `text`
/// when both are shorter than 0x80 bytes; `false`, with nothing appended,
/// when one is not. Short copies are made inline: through
/// `String::push_str` each is a call of libc's `memmove`, and those calls
/// were a quarter of the time to build a scope of 1,000 short attributes.
#[inline(always)]
#[allow(unsafe_code)]
fn append_short(text: &mut String, key: &str, value: &str) -> bool {
    let (k, v) = (key.as_bytes(), value.as_bytes());
    // The lengths are written as single bytes: only below 0x80 is such a
    // byte a whole (ASCII) character.
    if k.len() >= 0x80 || v.len() >= 0x80 {
        return false;
    }
    let total = k.len() + v.len() + 2;
    // SAFETY: the bytes appended are two whole `&str`s and two ASCII bytes
    // (lengths below 0x80, checked above), so the text stays UTF-8; the
    // length grows only after every one of them was written.
    let buf = unsafe { text.as_mut_vec() };
    let len = buf.len();
    let written = buf.spare_capacity_mut().get_mut(..total).and_then(|dst| {
        let (dk, rest) = dst.split_at_mut_checked(k.len())?;
        let (dv, lens) = rest.split_at_mut_checked(v.len())?;
        copy_short(dk, k)?;
        copy_short(dv, v)?;
        let [a, b] = lens else { return None };
        a.write(k.len() as u8);
        b.write(v.len() as u8);
        Some(())
    });
    if written.is_some() {
        // SAFETY: `len + total` bytes are initialized (see above) and within
        // the capacity (`get_mut(..total)` of the spare capacity succeeded).
        unsafe { buf.set_len(len + total) };
    } else {
        // Not reached (the caller reserved the room); safe and slower.
        buf.extend_from_slice(k);
        buf.extend_from_slice(v);
        buf.extend_from_slice(&[k.len() as u8, v.len() as u8]);
    }
    true
}

/// Writes all of `src` into `dst` (as long as `src`) with fixed-size
/// copies that overlap, as `memcpy` does inside, but without its call.
/// `None` (nothing certain written) when the lengths differ.
#[inline(always)]
fn copy_short(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]) -> Option<()> {
    let n = src.len();
    if dst.len() != n {
        return None;
    }
    if n >= 16 {
        let mut i = 0;
        while i + 16 < n {
            put::<16>(dst.get_mut(i..)?, src.get(i..)?)?;
            i += 16;
        }
        put::<16>(dst.get_mut(n - 16..)?, src.get(n - 16..)?)
    } else if n >= 8 {
        put::<8>(dst, src)?;
        put::<8>(dst.get_mut(n - 8..)?, src.get(n - 8..)?)
    } else if n >= 4 {
        put::<4>(dst, src)?;
        put::<4>(dst.get_mut(n - 4..)?, src.get(n - 4..)?)
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            d.write(*s);
        }
        Some(())
    }
}

/// Copies the first `N` bytes of `src` to `dst`.
#[inline(always)]
fn put<const N: usize>(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]) -> Option<()> {
    let s: [u8; N] = src.get(..N)?.try_into().ok()?;
    let d = dst.get_mut(..N)?;
    for (d, s) in d.iter_mut().zip(s) {
        d.write(s);
    }
    Some(())
}

/// `value` itself when it is text (`&str`, `String`, `&String` or `&&str`),
/// so that it is copied without going through `core::fmt`, which costs
/// several times the copy (`write!` walks its format string's pieces and
/// calls `Display::fmt` and `Formatter::pad` through function pointers).
/// The type test is resolved at compile time.
#[inline(always)]
#[allow(unsafe_code)]
fn as_text<V: fmt::Display + ?Sized>(value: &V) -> Option<&str> {
    let ty = typeid::of::<V>();
    let ptr: *const V = value;
    // SAFETY: each branch runs only when `V` is the type the pointer is cast
    // to, up to lifetimes (`typeid::of` ignores them). A reference inside `V`
    // outlives the borrow of `value` (`V: 'a` for `value: &'a V`), so reading
    // it with the shorter lifetime of the result is sound, as for any
    // covariant reference.
    unsafe {
        if ty == typeid::of::<&str>() {
            return Some(*ptr.cast::<&str>());
        }
        if ty == typeid::of::<String>() {
            return Some((*ptr.cast::<String>()).as_str());
        }
        if ty == typeid::of::<&String>() {
            return Some((*ptr.cast::<&String>()).as_str());
        }
        if ty == typeid::of::<&&str>() {
            return Some(**ptr.cast::<&&str>());
        }
    }
    None
}

/// The attributes in an [`AttrBuf`]'s text (also when the text was copied
/// elsewhere, as a short one is into an ended scope's event), newest first.
pub(crate) fn iter_text_rev(text: &str) -> IterRev<'_> {
    IterRev {
        raw: Raw {
            text,
            end: text.len(),
        },
    }
}

/// [`AttrBuf::iter_rev`].
pub(crate) struct IterRev<'a> {
    raw: Raw<'a>,
}

/// Walks a buffer from its end, answering where each key and value are.
struct Raw<'a> {
    text: &'a str,
    end: usize,
}

impl Raw<'_> {
    /// The length stored in the `char` ending at `self.end`.
    #[inline]
    fn length(&mut self) -> Option<usize> {
        let last = *self.text.as_bytes().get(self.end.checked_sub(1)?)?;
        if last < 0x80 {
            // Lengths below 128: one byte, the common case.
            self.end -= 1;
            return Some(usize::from(last));
        }
        let c = self.text.get(..self.end)?.chars().next_back()?;
        self.end -= c.len_utf8();
        Some(char_len(c))
    }

    /// Where the key and the value of the attribute ending at `self.end` are.
    #[inline]
    fn next(&mut self) -> Option<(Range<usize>, Range<usize>)> {
        let value_len = self.length()?;
        let key_len = self.length()?;
        let value_at = self.end.checked_sub(value_len)?;
        let key_at = value_at.checked_sub(key_len)?;
        let value = value_at..self.end;
        self.end = key_at;
        Some((key_at..value_at, value))
    }
}

impl<'a> Iterator for IterRev<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.raw.next()?;
        Some((self.raw.text.get(k)?, self.raw.text.get(v)?))
    }
}

/// The attributes of a chain of buffers given innermost first, each key once
/// with its innermost (newest) value, sorted by key.
/// `value` as text, never panicking: a `Display` that returns an error
/// (which makes `to_string()` panic) leaves what it wrote before failing.
pub(crate) fn display_string(value: &(impl fmt::Display + ?Sized)) -> String {
    let mut s = String::new();
    let _ = write!(s, "{value}");
    s
}

pub(crate) fn flatten<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for t in texts {
        pairs.extend(iter_text_rev(t));
    }
    // Stable: among equal keys the newest stays first, and `dedup_by` keeps
    // the first.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs.dedup_by(|later, first| later.0 == first.0);
    pairs
}

/// [`flatten`] as owned strings.
pub(crate) fn flatten_owned<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    flatten(texts)
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
        let flat = flatten([inner.as_str(), outer.as_str()].into_iter());
        assert_eq!(flat, [("i", "2"), ("k", "inner2"), ("o", "1")]);
    }

    #[test]
    fn lengths_survive_the_surrogate_gap_and_long_texts_are_cut() {
        let mut b = AttrBuf::default();
        let around = "é".repeat(0xD800 / 2); // 0xD800 bytes
        b.push_str("k", &around);
        b.push_str(&"x".repeat(0xE000), "v");
        let long = "ü".repeat(MAX_TEXT / 2 + 10);
        b.push_str("long", &long);
        assert_eq!(b.get("k"), Some(around.as_str()));
        assert_eq!(b.get(&"x".repeat(0xE000)), Some("v"));
        let cut = b.get("long").unwrap();
        assert!(cut.len() <= MAX_TEXT && cut.len() > MAX_TEXT - 4);
        assert!(long.starts_with(cut));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn short_keys_and_values_of_every_length_are_copied_whole() {
        // ASCII and two-byte characters, so that the copies also end inside
        // and after multi-byte text.
        let ascii: String = (0..127u8).map(|i| char::from(b'a' + i % 26)).collect();
        let wide: String = "é".repeat(63);
        for src in [&ascii, &wide] {
            let cuts: Vec<usize> = (0..=src.len())
                .filter(|&i| src.is_char_boundary(i))
                .collect();
            for &k in &cuts {
                for &v in &cuts {
                    let (key, value) = (&src[..k], &src[src.len() - v..]);
                    let mut b = AttrBuf::default();
                    b.push_str("x", "y");
                    b.push_str(key, value);
                    let mut expected = String::from("xy\u{1}\u{1}");
                    expected.push_str(key);
                    expected.push_str(value);
                    expected.push(char::from(k as u8));
                    expected.push(char::from(v as u8));
                    assert_eq!(b.as_str(), expected, "key {k} value {v}");
                    assert_eq!(b.get(key), Some(value));
                }
            }
        }
    }

    #[test]
    fn the_inline_copy_refuses_lengths_that_are_not_one_ascii_byte() {
        let mut text = String::from("kept");
        text.reserve(1_000);
        let long = "x".repeat(0x80);
        assert!(!append_short(&mut text, &long, "v"));
        assert!(!append_short(&mut text, "k", &long));
        assert_eq!(text, "kept");
        assert!(append_short(&mut text, "k", &long[1..]));
        assert_eq!(text.len(), 4 + 1 + 0x7f + 2);
        // Through `push_str`, such lengths take the long path.
        let mut b = AttrBuf::default();
        b.push_str(&long, "v");
        assert_eq!(b.get(&long), Some("v"));
    }

    #[test]
    fn a_buffer_that_outgrows_the_pool_moves_into_the_spare_large_one() {
        let fill = |b: &mut AttrBuf, tag: &str| {
            for i in 0..2_000 {
                b.push_str(&format!("key_{i}"), &format!("{tag}_{i}"));
            }
        };
        let mut first = AttrBuf::default();
        fill(&mut first, "a");
        let large = first.capacity();
        assert!(large > POOLED_MAX_CAPACITY && large <= LARGE_MAX_CAPACITY);
        crate::context::recycle_attrs(first);
        let mut second = AttrBuf::default();
        fill(&mut second, "b");
        // It moved into the spare buffer, with what it held so far, and
        // never grew again.
        assert_eq!(second.capacity(), large);
        assert_eq!(second.len(), 2_000);
        for i in [0, 1, 17, 500, 1_999] {
            assert_eq!(
                second.get(&format!("key_{i}")),
                Some(format!("b_{i}").as_str())
            );
        }
        // Taken: the next one grows on its own.
        let mut third = AttrBuf::default();
        fill(&mut third, "c");
        assert_eq!(third.get("key_3"), Some("c_3"));
    }

    #[test]
    fn text_values_are_copied_and_others_formatted_alike() {
        let owned = String::from("owned");
        let borrowed: &str = "borrowed";
        let long = "v".repeat(300);
        let mut b = AttrBuf::default();
        b.push_display("str", &"literal");
        b.push_display("string", &owned.clone());
        b.push_display("string_ref", &&owned);
        b.push_display("str_ref_ref", &&borrowed);
        b.push_display("unsized", borrowed);
        b.push_display("cow", &std::borrow::Cow::Borrowed("cow"));
        b.push_display("int", &-42_i64);
        b.push_display("char", &'ß');
        b.push_display("long", &long.as_str());
        b.push_display(&"k".repeat(200), &owned);
        // `Display` with default options leaves text as it is.
        for (k, v) in [
            ("str", "literal"),
            ("string", "owned"),
            ("string_ref", "owned"),
            ("str_ref_ref", "borrowed"),
            ("unsized", "borrowed"),
            ("cow", "cow"),
            ("int", "-42"),
            ("char", "ß"),
            ("long", long.as_str()),
        ] {
            assert_eq!(b.get(k), Some(v), "{k}");
        }
        assert_eq!(as_text(&"x"), Some("x"));
        assert_eq!(as_text(&owned), Some("owned"));
        assert_eq!(as_text(&&owned), Some("owned"));
        assert_eq!(as_text(&&borrowed), Some("borrowed"));
        assert_eq!(as_text(&7_u8), None);
        assert_eq!(as_text(&std::borrow::Cow::Borrowed("c")), None);
        assert_eq!(b.get(&"k".repeat(200)), Some("owned"));
        assert_eq!(b.len(), 10);
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
