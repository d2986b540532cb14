//! A metered stream of server-sent events.

use std::collections::VecDeque;

use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::core::ClientError;
use crate::meter::{End, Meter};
use crate::sse::{SseEvent, SseParser};
use crate::transport::error_chain as chain;

/// The events of a streamed call, as they arrive. Usage is recorded when the
/// stream ends; dropped before its end, it is recorded as partial with the
/// counts seen so far.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    /// `None` for an API that is not metered.
    meter: Option<Meter>,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
    ended: bool,
}

impl EventStream {
    pub(crate) fn new(body: Incoming, meter: Option<Meter>) -> EventStream {
        EventStream {
            body,
            meter,
            parser: SseParser::default(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The next event; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<SseEvent, ClientError>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Some(Ok(ev));
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        if let Some(m) = self.meter.as_mut() {
                            m.data(d);
                        }
                        let ready = &mut self.ready;
                        self.parser.push(d, |ev| ready.push_back(ev));
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    let msg = chain(&e);
                    if let Some(m) = self.meter.as_mut() {
                        m.finish(End::Upstream(msg.clone()));
                    }
                    return Some(Err(ClientError::Transport(msg)));
                }
                None => {
                    self.ended = true;
                    if let Some(m) = self.meter.as_mut() {
                        m.finish(End::Complete);
                    }
                }
            }
        }
    }
}
