//! Upstreams and gateway settings.

use std::str::FromStr;
use std::time::Duration;

use costtrace_providers::Flavor;
use http::Uri;

use crate::GatewayError;

/// One provider the gateway forwards to: requests to `/{name}/…` go to
/// `{url}/…`. The name is also the provider recorded (and priced) for its
/// calls; `anthropic…` names speak Anthropic Messages, every other name the
/// OpenAI-compatible APIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// Scheme, authority and an optional path prefix, no trailing slash.
    pub url: String,
    pub flavor: Flavor,
}

impl Upstream {
    /// `name` at `url` (`https://api.openai.com`, `http://127.0.0.1:11434`).
    pub fn new(name: &str, url: &str) -> Result<Upstream, GatewayError> {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(GatewayError::Config(format!(
                "upstream name {name:?}: use letters, digits, '-' and '_' (it becomes the first path segment)"
            )));
        }
        // A password in the URL never reaches an error message.
        let shown = costtrace_core::secrets::redact_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| GatewayError::Config(format!("upstream {name}: URL {shown:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.authority().is_some() => {}
            _ => {
                return Err(GatewayError::Config(format!(
                    "upstream {name}: URL {shown:?} must start with http:// or https://"
                )));
            }
        }
        if uri.query().is_some() {
            return Err(GatewayError::Config(format!(
                "upstream {name}: URL {url:?} must not have a query"
            )));
        }
        Ok(Upstream {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            flavor: Flavor::from_name(name),
        })
    }
}

impl FromStr for Upstream {
    type Err = GatewayError;

    /// `NAME=URL`, as given to `--upstream`.
    ///
    /// ```
    /// let u: costtrace_gateway::Upstream = "openai=https://api.openai.com/".parse().unwrap();
    /// assert_eq!((u.name.as_str(), u.url.as_str()), ("openai", "https://api.openai.com"));
    /// ```
    fn from_str(s: &str) -> Result<Upstream, GatewayError> {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            GatewayError::Config(format!(
                "--upstream {s:?}: expected NAME=URL, e.g. openai=https://api.openai.com"
            ))
        })?;
        Upstream::new(name.trim(), url.trim())
    }
}

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub upstreams: Vec<Upstream>,
    /// How long to wait for an upstream's response headers (a stream may
    /// then run as long as it runs). Default 600 s.
    pub timeout: Duration,
    /// Answer 401 to requests without a valid `X-Costtrace-Key`.
    pub require_key: bool,
    /// Largest request body read (to meter it); larger ones get 413.
    /// Default 32 MiB.
    pub max_request_body: usize,
}

impl GatewayConfig {
    pub fn new(upstreams: Vec<Upstream>) -> GatewayConfig {
        GatewayConfig {
            upstreams,
            timeout: Duration::from_secs(600),
            require_key: false,
            max_request_body: 32 << 20,
        }
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub fn require_key(mut self, yes: bool) -> Self {
        self.require_key = yes;
        self
    }
}
