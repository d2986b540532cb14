//! Which provider API a call uses, told from the flavour and the URL path.

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenAI and everything compatible with it (Azure OpenAI, OpenRouter,
    /// vLLM, Ollama, …).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Flavor {
    /// `anthropic…` names are Anthropic; every other name is taken as
    /// OpenAI-compatible.
    pub fn from_name(name: &str) -> Flavor {
        if name.to_ascii_lowercase().starts_with("anthropic") {
            Flavor::Anthropic
        } else {
            Flavor::OpenAi
        }
    }
}

/// An API whose usage costtrace understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI `POST …/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST …/embeddings`.
    Embeddings,
    /// OpenAI Responses, `POST …/responses`.
    Responses,
    /// Anthropic `POST …/messages`.
    Messages,
}

impl Api {
    /// The API a `POST` to `path` calls, or `None` when costtrace does not
    /// meter it (model lists, files, `…/messages/count_tokens`, …).
    ///
    /// ```
    /// use costtrace_providers::{Api, Flavor};
    /// assert_eq!(Api::from_path(Flavor::OpenAi, "/v1/chat/completions"), Some(Api::ChatCompletions));
    /// assert_eq!(Api::from_path(Flavor::Anthropic, "/v1/messages"), Some(Api::Messages));
    /// assert_eq!(Api::from_path(Flavor::OpenAi, "/v1/models"), None);
    /// ```
    pub fn from_path(flavor: Flavor, path: &str) -> Option<Api> {
        let path = path.trim_end_matches('/');
        match flavor {
            Flavor::OpenAi if path.ends_with("/chat/completions") => Some(Api::ChatCompletions),
            Flavor::OpenAi if path.ends_with("/embeddings") => Some(Api::Embeddings),
            Flavor::OpenAi if path.ends_with("/responses") => Some(Api::Responses),
            Flavor::Anthropic if path.ends_with("/messages") => Some(Api::Messages),
            _ => None,
        }
    }

    /// The usage record's `operation`.
    pub fn operation(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat",
            Api::Embeddings => "embedding",
            Api::Responses => "responses",
            Api::Messages => "messages",
        }
    }

    pub fn flavor(self) -> Flavor {
        match self {
            Api::Messages => Flavor::Anthropic,
            _ => Flavor::OpenAi,
        }
    }
}
