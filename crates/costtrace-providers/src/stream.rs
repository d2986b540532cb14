//! What a call's response has told so far (shared by both flavours).

use crate::anthropic::AnthropicUsage;
use crate::counts::{Counts, ProviderError};

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) model: Option<String>,
    pub(crate) counts: Counts,
    /// Anthropic's raw counts (see [`AnthropicUsage`]).
    pub(crate) anthropic: AnthropicUsage,
    /// The stream's end marker arrived (`[DONE]`, `message_stop`,
    /// `response.completed`).
    pub(crate) complete: bool,
    pub(crate) error: Option<ProviderError>,
    pub(crate) events: u64,
}

impl StreamState {
    pub(crate) fn set_model(&mut self, m: &str) {
        if self.model.as_deref() != Some(m) {
            self.model = Some(m.to_owned());
        }
    }
}
