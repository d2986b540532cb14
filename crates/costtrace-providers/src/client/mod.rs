//! Instrumented clients (features `openai`, `anthropic`): every metered call is
//! recorded as usage in the current costtrace context and scope, priced by
//! the recorder, streams included (a stream dropped early is recorded as
//! partial). The context's user and tenant ids are also sent to the
//! provider where its API has a field for them (seed 001, "Metadata
//! automatically added to API calls"); see each client.
//!
//! Typed helpers cover chat / messages and embeddings; anything else passes
//! through as JSON ([`OpenAiClient::json`], [`AnthropicClient::json`]), and
//! is recorded only when it is a metered API (chat completions, embeddings,
//! Responses, Messages): `…/messages/count_tokens` or `…/moderations` are
//! not.

mod core;
mod stream;

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(feature = "openai")]
mod openai;

#[cfg(feature = "anthropic")]
pub use anthropic::{AnthropicClient, MessagesRequest, MessagesResponse};
pub use core::ClientError;
#[cfg(feature = "openai")]
pub use openai::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChatStream, Delta, Embedding,
    EmbeddingRequest, EmbeddingResponse, Message, OpenAiClient,
};
pub use stream::EventStream;
