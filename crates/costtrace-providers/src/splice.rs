//! Byte-level edits of a JSON request body, for proxies: the body is
//! changed by inserting bytes, never by parsing and re-serialising it, so
//! every other byte (key order included: a JSON schema's `properties` order
//! steers a model's output) reaches the provider exactly as the caller sent
//! it.
//!
//! The scanner assumes input that `serde_json` has already accepted; on
//! anything it does not expect it gives up (`None`) rather than guess.

use std::ops::Range;

/// Where one member of an object sits in the body.
struct Member {
    key: String,
    value: Range<usize>,
}

/// An object's members and the position of its opening `{`.
struct Object {
    open: usize,
    members: Vec<Member>,
}

const INCLUDE_USAGE: &str = r#""include_usage":true"#;

/// Makes a chat completions body ask for usage in its stream
/// (`stream_options.include_usage: true`) by inserting bytes only:
/// - no top-level `stream_options`: `"stream_options":{"include_usage":true}`
///   goes right after the top-level `{`;
/// - `stream_options` is an object without `include_usage`:
///   `"include_usage":true` goes right after its `{`;
/// - `stream_options` is not an object (`null`, …): its value is replaced by
///   `{"include_usage":true}`, as the provider would reject it anyway.
///
/// `None` when the body is left alone: it is not a JSON object, or
/// `include_usage` is already there (whatever its value).
pub(crate) fn ask_for_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let top = object_at(body, skip_ws(body, 0))?;
    let Some(opts) = top.members.iter().rev().find(|m| m.key == "stream_options") else {
        let insert = if top.members.is_empty() {
            format!(r#""stream_options":{{{INCLUDE_USAGE}}}"#)
        } else {
            format!(r#""stream_options":{{{INCLUDE_USAGE}}},"#)
        };
        return Some(insert_at(body, top.open + 1, insert.as_bytes()));
    };
    if body.get(opts.value.start) != Some(&b'{') {
        let mut out = Vec::with_capacity(body.len() + INCLUDE_USAGE.len() + 2);
        out.extend_from_slice(&body[..opts.value.start]);
        out.extend_from_slice(format!("{{{INCLUDE_USAGE}}}").as_bytes());
        out.extend_from_slice(&body[opts.value.end..]);
        return Some(out);
    }
    let inner = object_at(body, opts.value.start)?;
    if inner.members.iter().any(|m| m.key == "include_usage") {
        return None;
    }
    let insert = if inner.members.is_empty() {
        INCLUDE_USAGE.to_owned()
    } else {
        format!("{INCLUDE_USAGE},")
    };
    Some(insert_at(body, inner.open + 1, insert.as_bytes()))
}

fn insert_at(body: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + bytes.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(bytes);
    out.extend_from_slice(&body[at..]);
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string starting at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The end of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The members of the object whose `{` is at `open`.
fn object_at(b: &[u8], open: usize) -> Option<Object> {
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        return Some(Object { open, members });
    }
    loop {
        let key_end = string_end(b, i)?;
        // Decoded, so an escaped key (`"stream\u005foptions"`) is still seen.
        let key: String = serde_json::from_slice(&b[i..key_end]).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        members.push(Member {
            key,
            value: start..end,
        });
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(Object { open, members }),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ask_for_stream_usage;

    fn ask(body: &str) -> Option<String> {
        ask_for_stream_usage(body.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn inserts_after_the_top_level_brace_and_nowhere_else() {
        assert_eq!(
            ask(r#"  {"z":1,"a":{"y":"}\"{","b":[1,{"c":2}]},"stream":true}"#).as_deref(),
            Some(
                r#"  {"stream_options":{"include_usage":true},"z":1,"a":{"y":"}\"{","b":[1,{"c":2}]},"stream":true}"#
            )
        );
        assert_eq!(
            ask("{}").as_deref(),
            Some(r#"{"stream_options":{"include_usage":true}}"#)
        );
        assert_eq!(
            ask(" { \n } ").as_deref(),
            Some(" {\"stream_options\":{\"include_usage\":true} \n } ")
        );
    }

    #[test]
    fn completes_an_existing_stream_options_object() {
        assert_eq!(
            ask(r#"{"b":1,"stream_options":{ },"a":"stream_options"}"#).as_deref(),
            Some(r#"{"b":1,"stream_options":{"include_usage":true },"a":"stream_options"}"#)
        );
        assert_eq!(
            ask(r#"{"stream_options" : {"z":"x","a":null}, "n":-1.5e3}"#).as_deref(),
            Some(r#"{"stream_options" : {"include_usage":true,"z":"x","a":null}, "n":-1.5e3}"#)
        );
        assert_eq!(
            ask(r#"{"stream_options":null,"z":true}"#).as_deref(),
            Some(r#"{"stream_options":{"include_usage":true},"z":true}"#)
        );
        assert_eq!(ask(r#"{"stream_options":{"include_usage":null}}"#), None);
        assert_eq!(ask(r#"[1,2]"#), None);
        assert_eq!(
            ask(r#"{"stream\u005foptions":{"include_usage":false}}"#),
            None
        );
    }
}
