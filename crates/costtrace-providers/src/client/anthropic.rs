//! The Anthropic Messages client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::core::{ClientError, Core, context_ids};
use super::stream::EventStream;
use crate::Flavor;

/// The API version header sent with every request.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A client for Anthropic Messages. The context's `user_id` (or, without
/// one, its `tenant_id`) is sent as `metadata.user_id` unless the request
/// sets it.
///
/// ```no_run
/// # async fn demo() -> Result<(), costtrace_providers::client::ClientError> {
/// use costtrace_providers::client::{AnthropicClient, MessagesRequest};
/// let client = AnthropicClient::new("https://api.anthropic.com", "sk-ant-…")?;
/// let reply = client.messages(&MessagesRequest::new("claude-sonnet-4-0", 1024, "Hello")).await?;
/// # let _ = reply; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AnthropicClient {
    core: Core,
}

impl AnthropicClient {
    /// `base_url` without `/v1` (`https://api.anthropic.com`); calls are
    /// recorded as provider `anthropic`.
    pub fn new(base_url: &str, api_key: &str) -> Result<AnthropicClient, ClientError> {
        let mut core = Core::new("anthropic", Flavor::Anthropic, base_url)?;
        core.header("x-api-key", api_key, true)?;
        core.header("anthropic-version", ANTHROPIC_VERSION, false)?;
        Ok(AnthropicClient { core })
    }

    /// An extra header on every request (`anthropic-beta`, …).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        self.core.header(name, value, true)?;
        Ok(self)
    }

    pub fn timeout(mut self, d: std::time::Duration) -> Self {
        self.core.timeout = d;
        self
    }

    /// Do not send the context's ids to the provider.
    pub fn without_context_ids(mut self) -> Self {
        self.core.send_context = false;
        self
    }

    fn add_ids(&self, body: &mut Value) {
        if !self.core.send_context {
            return;
        }
        let (user, tenant) = context_ids();
        let (Some(id), Some(obj)) = (user.or(tenant), body.as_object_mut()) else {
            return;
        };
        let md = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(md) = md.as_object_mut() {
            md.entry("user_id").or_insert(Value::String(id));
        }
    }

    /// Any JSON `POST` under the base URL (`/v1/messages/count_tokens`, …);
    /// metered when it is `/v1/messages`.
    pub async fn json(&self, path: &str, mut body: Value) -> Result<Value, ClientError> {
        self.add_ids(&mut body);
        self.core.json(path, body).await
    }

    /// `POST /v1/messages`.
    pub async fn messages(&self, req: &MessagesRequest) -> Result<MessagesResponse, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        let v = self.json("/v1/messages", body).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /v1/messages` streamed, as raw events (`message_start`,
    /// `content_block_delta`, …).
    pub async fn messages_stream(&self, req: &MessagesRequest) -> Result<EventStream, ClientError> {
        let mut body = serde_json::to_value(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.add_ids(&mut body);
        if let Some(o) = body.as_object_mut() {
            o.insert("stream".into(), Value::Bool(true));
        }
        let (meter, resp) = self.core.send("/v1/messages", body).await?;
        Ok(EventStream::new(resp.into_body(), meter))
    }
}

/// A Messages request; `messages` is the API's JSON (text or blocks),
/// `extra` any other field (`system`, `temperature`, `tools`, …).
#[derive(Clone, Debug, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    pub messages: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    /// One user turn of text.
    pub fn new(model: &str, max_tokens: u32, user_text: &str) -> MessagesRequest {
        MessagesRequest {
            model: model.into(),
            max_tokens,
            messages: json!([{"role": "user", "content": user_text}]),
            extra: Map::new(),
        }
    }

    /// Sets another field of the request.
    pub fn with(mut self, key: &str, value: Value) -> MessagesRequest {
        self.extra.insert(key.into(), value);
        self
    }
}

/// A Messages response.
#[derive(Clone, Debug, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    pub model: String,
    pub content: Vec<Value>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<Value>,
}

impl MessagesResponse {
    /// The text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect()
    }
}
