//! The OpenAI-compatible client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::core::{ClientError, Core, context_ids};
use super::stream::EventStream;
use crate::Flavor;

/// A client for an OpenAI-compatible endpoint: OpenAI, Azure OpenAI,
/// OpenRouter, vLLM, Ollama, …
///
/// The context's `user_id` is sent as `user` (unless the request sets it);
/// `tenant_id` and `user_id` go into `metadata` for the Responses API and
/// for chat completions stored with `store: true` (OpenAI accepts chat
/// `metadata` only then).
///
/// ```no_run
/// # async fn demo() -> Result<(), costtrace_providers::client::ClientError> {
/// use costtrace_providers::client::{ChatRequest, Message, OpenAiClient};
/// let client = OpenAiClient::new("https://api.openai.com/v1", "sk-…")?;
/// let reply = client.chat(&ChatRequest::new("gpt-4o", vec![Message::user("Hello")])).await?;
/// # let _ = reply; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    core: Core,
}

impl OpenAiClient {
    /// `base_url` ends where the API paths start (`…/v1`); calls are
    /// recorded as provider `openai`.
    pub fn new(base_url: &str, api_key: &str) -> Result<OpenAiClient, ClientError> {
        let mut core = Core::new("openai", Flavor::OpenAi, base_url)?;
        if !api_key.is_empty() {
            core.header("authorization", &format!("Bearer {api_key}"), true)?;
        }
        Ok(OpenAiClient { core })
    }

    /// The provider name recorded and priced (`openrouter`, `azure`, …).
    pub fn provider(mut self, name: &str) -> Self {
        self.core.provider = name.to_owned();
        self
    }

    /// An extra header on every request (Azure: `api-key`). Marked
    /// sensitive: never printed.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        self.core.header(name, value, true)?;
        Ok(self)
    }

    /// A query string on every request (Azure: `api-version=2024-10-21`).
    pub fn query(mut self, q: &str) -> Self {
        self.core.query = Some(q.trim_start_matches('?').to_owned());
        self
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

    fn add_ids(&self, path: &str, body: &mut Value) {
        if !self.core.send_context {
            return;
        }
        let (user, tenant) = context_ids();
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        if let Some(u) = &user
            && !obj.contains_key("user")
        {
            obj.insert("user".into(), Value::String(u.clone()));
        }
        let stored = obj.get("store").and_then(Value::as_bool) == Some(true);
        let metadata_ok =
            path.ends_with("/responses") || (path.ends_with("/chat/completions") && stored);
        if metadata_ok && (user.is_some() || tenant.is_some()) {
            let md = obj.entry("metadata").or_insert_with(|| json!({}));
            if let Some(md) = md.as_object_mut() {
                for (k, v) in [("tenant_id", &tenant), ("user_id", &user)] {
                    if let Some(v) = v
                        && !md.contains_key(k)
                    {
                        md.insert(k.into(), Value::String(v.clone()));
                    }
                }
            }
        }
    }

    /// Any JSON `POST` (`path` from the base URL: `/responses`, `/moderations`
    /// …); metered when it is one of the metered APIs.
    ///
    /// The body is sent as `serde_json` serialises it. Without serde_json's
    /// `preserve_order` feature a `Value`'s object keys are sorted when it is
    /// built (`json!` included), which reorders a JSON schema's `properties`
    /// — and models follow that order in structured output. Enable
    /// `serde_json = { features = ["preserve_order"] }` in your application
    /// when the order matters; this client keeps whatever order it is given.
    /// (The gateway never re-serialises a body: it only inserts bytes.)
    pub async fn json(&self, path: &str, mut body: Value) -> Result<Value, ClientError> {
        self.add_ids(path, &mut body);
        self.core.json(path, body).await
    }

    /// Any streamed JSON `POST`, as raw events.
    pub async fn json_stream(
        &self,
        path: &str,
        mut body: Value,
    ) -> Result<EventStream, ClientError> {
        self.add_ids(path, &mut body);
        if let Some(o) = body.as_object_mut() {
            o.insert("stream".into(), Value::Bool(true));
        }
        let (meter, resp) = self.core.send(path, body).await?;
        Ok(EventStream::new(resp.into_body(), meter))
    }

    /// `POST /chat/completions`.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ClientError> {
        let v = self.json("/chat/completions", to_value(req)?).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /chat/completions` streamed (usage is asked for unless the
    /// request's `stream_options` says otherwise).
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ClientError> {
        let events = self
            .json_stream("/chat/completions", to_value(req)?)
            .await?;
        Ok(ChatStream { events })
    }

    /// `POST /embeddings`.
    pub async fn embeddings(
        &self,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse, ClientError> {
        let v = self.json("/embeddings", to_value(req)?).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

fn to_value(v: &impl Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}

/// A chat message with text content (use [`OpenAiClient::json`] for
/// images, tools and the rest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
}

impl Message {
    pub fn system(text: &str) -> Message {
        Message {
            role: "system".into(),
            content: Some(text.into()),
        }
    }
    pub fn user(text: &str) -> Message {
        Message {
            role: "user".into(),
            content: Some(text.into()),
        }
    }
}

/// What a stream chunk adds to a choice.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// A chat completion request; `extra` carries any other field
/// (`temperature`, `max_tokens`, `response_format`, …).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    pub fn new(model: &str, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages,
            extra: Map::new(),
        }
    }

    /// Sets another field of the request.
    pub fn with(mut self, key: &str, value: Value) -> ChatRequest {
        self.extra.insert(key.into(), value);
        self
    }
}

/// A chat completion.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    /// The provider's usage object, as sent.
    #[serde(default)]
    pub usage: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One chunk of a streamed chat completion.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatChunk {
    pub model: String,
    /// Empty in the final usage chunk.
    pub choices: Vec<ChatChoice>,
    #[serde(default)]
    pub usage: Option<Value>,
}

/// A streamed chat completion; dropped early, the call is recorded as partial.
#[derive(Debug)]
pub struct ChatStream {
    events: EventStream,
}

impl ChatStream {
    /// The next chunk; `None` after `[DONE]` or the end of the stream.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ClientError>> {
        loop {
            let ev = match self.events.next().await? {
                Ok(ev) => ev,
                Err(e) => return Some(Err(e)),
            };
            if ev.data.trim() == "[DONE]" {
                continue;
            }
            return Some(
                serde_json::from_str(&ev.data).map_err(|e| ClientError::Decode(e.to_string())),
            );
        }
    }

    /// Reads the stream to its end and returns the text of choice 0.
    pub async fn text(mut self) -> Result<String, ClientError> {
        let mut s = String::new();
        while let Some(chunk) = self.next().await {
            for c in chunk?.choices {
                if let Some(t) = c.delta.and_then(|d| d.content)
                    && c.index == 0
                {
                    s.push_str(&t);
                }
            }
        }
        Ok(s)
    }
}

/// An embeddings request; `input` is a string or a list of strings.
#[derive(Clone, Debug, Serialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingRequest {
    pub fn new(model: &str, input: impl Into<Value>) -> EmbeddingRequest {
        EmbeddingRequest {
            model: model.into(),
            input: input.into(),
            extra: Map::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Embedding {
    pub index: u32,
    pub embedding: Vec<f32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EmbeddingResponse {
    pub model: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub usage: Option<Value>,
}
