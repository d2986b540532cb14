//! An incremental server-sent-events parser: bytes in as they arrive, whole
//! events out. Only what usage extraction needs: `event:` and `data:` lines,
//! events ended by a blank line, `\n`, `\r\n` or `\r` line ends.

/// One event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    /// When a `data:` line was longer than the parser keeps (4 MiB: a
    /// Responses `response.completed` event carries the whole response,
    /// generated images included), `data` holds its first bytes and this its
    /// last ones — where a response's `usage` is.
    pub data_tail: Option<String>,
}

/// Feeds on chunks of a stream that may split lines and events anywhere.
///
/// ```
/// use costtrace_providers::sse::SseParser;
/// let mut p = SseParser::default();
/// let mut events = Vec::new();
/// p.push(b"event: ping\nda", |e| events.push(e));
/// p.push(b"ta: {}\n\n", |e| events.push(e));
/// assert_eq!(events[0].event.as_deref(), Some("ping"));
/// assert_eq!(events[0].data, "{}");
/// ```
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being received (no line end yet).
    line: Vec<u8>,
    /// A `\r` ended the last line; a `\n` right after it is part of that end.
    after_cr: bool,
    current: SseEvent,
    has_data: bool,
    /// The last bytes of the current line past [`MAX_LINE`] (at most
    /// 2 × [`TAIL`]); empty while the line fits.
    line_tail: Vec<u8>,
}

/// Longest line kept; longer lines are truncated (usage chunks are small, and
/// a runaway line must not grow memory without bound).
const MAX_LINE: usize = 4 << 20;

/// How much of the end of an over-long line is kept.
const TAIL: usize = 1 << 20;

impl SseParser {
    /// Parses `chunk`, calling `on_event` for every event it completes.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
                Some(i) => {
                    self.extend_line(&rest[..i]);
                    self.after_cr = rest[i] == b'\r';
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    let tail = std::mem::take(&mut self.line_tail);
                    if let Some(ev) = self.line_done(&line, &tail) {
                        on_event(ev);
                    }
                    self.line = line;
                    self.line.clear();
                    self.line_tail = tail;
                    self.line_tail.clear();
                }
                None => {
                    self.extend_line(rest);
                    rest = &[];
                }
            }
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        let (head, rest) = bytes.split_at(bytes.len().min(room));
        self.line.extend_from_slice(head);
        if !rest.is_empty() {
            crate::counts::push_tail(&mut self.line_tail, rest, TAIL);
        }
    }

    fn line_done(&mut self, line: &[u8], tail: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            let had = std::mem::replace(&mut self.has_data, false);
            return had.then_some(ev);
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.current.event = Some(value.into_owned()),
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
                if !tail.is_empty() {
                    self.current.data_tail = Some(String::from_utf8_lossy(tail).into_owned());
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in input.chunks(piece) {
            p.push(c, |e| out.push(e));
        }
        out
    }

    #[test]
    fn events_survive_any_split() {
        let input = b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        for piece in 1..input.len() {
            let evs = parse_in_pieces(input, piece);
            assert_eq!(evs.len(), 3, "piece size {piece}");
            assert_eq!(evs[0].event.as_deref(), Some("message_start"));
            assert_eq!(evs[0].data, "{\"a\":1}");
            assert_eq!(evs[1].event, None);
            assert_eq!(evs[1].data, "x\ny");
            assert_eq!(evs[2].data, "[DONE]");
        }
    }

    #[test]
    fn an_unfinished_event_is_not_emitted() {
        let evs = parse_in_pieces(b"data: {\"a\":1}\n\ndata: {\"b\"", 4);
        assert_eq!(evs.len(), 1);
    }
}
