#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The instrumented clients against the mock provider over loopback HTTP.

use std::time::Duration;

use costtrace::FutureExt as _;
use costtrace_providers::client::{
    AnthropicClient, ChatRequest, ClientError, EmbeddingRequest, Message, MessagesRequest,
    OpenAiClient,
};
use costtrace_providers::mock::{MockProvider, wait_for_usages};
use serde_json::json;

const OPENAI_KEY: &str = "sk-proj-CLIENTTESTKEY0123456789abcdefghijkl";
const ANTHROPIC_KEY: &str = "sk-ant-api03-CLIENTTESTKEY0123456789abcdef";

#[tokio::test]
async fn openai_chat_embeddings_and_stream_are_recorded_in_the_scope() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let client = OpenAiClient::new(&format!("{}/v1", mock.url()), OPENAI_KEY).unwrap();
    let (text, streamed, dims) = async {
        let reply = client
            .chat(&ChatRequest::new("gpt-4o", vec![Message::user("Total?")]))
            .await
            .unwrap();
        let streamed = client
            .chat_stream(&ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi")]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let emb = client
            .embeddings(&EmbeddingRequest::new(
                "text-embedding-3-small",
                "The food was delicious",
            ))
            .await
            .unwrap();
        (
            reply.choices[0]
                .message
                .as_ref()
                .unwrap()
                .content
                .clone()
                .unwrap(),
            streamed,
            emb.data[0].embedding.len(),
        )
    }
    .in_scope(
        costtrace::scope("receipt")
            .attr("tenant_id", "acme")
            .attr("user_id", "u_1"),
    )
    .await;
    assert!(text.starts_with("The receipt totals $42.17"));
    assert_eq!(streamed, "Hello! How can I assist you today?");
    assert_eq!(dims, 8);

    let u = wait_for_usages(&cap, 3).await;
    assert_eq!(u.len(), 3);
    let scope = cap.scope("receipt").unwrap();
    assert!(
        u.iter()
            .all(|u| u.scope_id == Some(scope.id) && u.attrs["tenant_id"] == "acme")
    );
    assert_eq!(
        u[0].cost_nanos,
        Some(176 * 2500 + 1024 * 1250 + 300 * 10_000)
    );
    assert_eq!(
        (u[1].input_tokens, u[1].output_tokens, u[1].partial),
        (Some(19), Some(9), false)
    );
    assert_eq!(u[1].cost_nanos, Some(19 * 150 + 9 * 600));
    assert_eq!(
        (u[2].operation.as_deref(), u[2].cost_nanos),
        (Some("embedding"), Some(160))
    );

    let seen = mock.requests();
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(
        seen[0].json()["user"],
        "u_1",
        "the context's user goes to the provider"
    );
    assert!(
        seen[0].json().get("metadata").is_none(),
        "chat metadata only with store: true"
    );
    assert_eq!(seen[1].json()["stream_options"]["include_usage"], true);
    assert_eq!(seen[2].json()["user"], "u_1");
    let all = serde_json::to_string(&cap.records()).unwrap();
    assert!(!all.contains("CLIENTTESTKEY"));
    assert!(
        !format!("{client:?}").contains("CLIENTTESTKEY"),
        "Debug hides the key"
    );
}

#[tokio::test]
async fn responses_pass_through_as_json_with_metadata() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let client = OpenAiClient::new(&format!("{}/v1", mock.url()), OPENAI_KEY).unwrap();
    let _ctx = costtrace::with_context([("tenant_id", "acme"), ("user_id", "u_2")]);
    let v = client
        .json(
            "/responses",
            json!({"model": "o4-mini", "input": "Line items?"}),
        )
        .await
        .unwrap();
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 640);
    let u = &wait_for_usages(&cap, 1).await[0];
    assert_eq!(u.cost_nanos, Some(180 * 1100 + 1920 * 275 + 850 * 4400));
    assert_eq!(u.attrs["user_id"], "u_2");
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["metadata"],
        json!({"tenant_id": "acme", "user_id": "u_2"})
    );
}

#[tokio::test]
async fn errors_are_returned_and_recorded() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let client = OpenAiClient::new(&format!("{}/v1", mock.url()), OPENAI_KEY)
        .unwrap()
        .header("x-mock-fixture", "openai/error_429")
        .unwrap();
    let err = client
        .chat(&ChatRequest::new("gpt-4o", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(matches!(err, ClientError::Provider(_)));
    let slow = OpenAiClient::new(&format!("{}/v1", mock.url()), OPENAI_KEY)
        .unwrap()
        .header("x-mock-delay-ms", "2000")
        .unwrap()
        .timeout(Duration::from_millis(100));
    let err = slow
        .embeddings(&EmbeddingRequest::new("text-embedding-3-small", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    let u = wait_for_usages(&cap, 2).await;
    assert!(
        u[0].error_message
            .as_deref()
            .unwrap()
            .starts_with("HTTP 429 rate_limit_exceeded")
    );
    assert_eq!(u[0].cost_nanos, None);
    assert_eq!(u[1].attrs["end"], "timeout");
}

#[tokio::test]
async fn an_invalid_url_is_never_sent_and_its_query_never_shown() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    // A key pasted with its trailing newline makes the URL invalid.
    let client = OpenAiClient::new(&format!("{}/v1", mock.url()), "")
        .unwrap()
        .query("key=AIzaSyQUERYKEY0123456789abcdefghijklm\n");
    let err = client
        .chat(&ChatRequest::new("gpt-4o", vec![Message::user("x")]))
        .await
        .unwrap_err();
    let why = "the request URL for \"/chat/completions\" is not valid (invalid uri character); \
               the query string is not shown: it may hold a key";
    assert!(
        matches!(&err, ClientError::Config(m) if m == why),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("client settings: {why}"));
    assert!(mock.requests().is_empty(), "never sent");
    let u = cap.usages();
    assert_eq!(u.len(), 1);
    assert_eq!(
        u[0].error_message.as_deref(),
        Some(format!("request to the provider failed: {why}").as_str()),
        "a failed call, not a successful one"
    );
    assert_eq!(u[0].attrs["end"], "request_failed");
    assert_eq!(u[0].cost_nanos, None);
    let all = serde_json::to_string(&cap.records()).unwrap();
    assert!(!all.contains("QUERYKEY"), "{all}");
}

#[tokio::test]
async fn calls_to_apis_that_are_not_metered_are_not_recorded() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let anthropic = AnthropicClient::new(&mock.url(), ANTHROPIC_KEY).unwrap();
    let v = anthropic
        .json(
            "/v1/messages/count_tokens",
            json!({"model": "claude-sonnet-4-0", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(v, json!({"input_tokens": 14}));
    let openai = OpenAiClient::new(&format!("{}/v1", mock.url()), OPENAI_KEY).unwrap();
    let err = openai
        .json("/moderations", json!({"input": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "the mock has no moderations");
    let seen: Vec<_> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/v1/messages/count_tokens", "/v1/moderations"]);
    assert_eq!(cap.usages().len(), 0, "{:?}", cap.usages());
}

#[tokio::test]
async fn anthropic_messages_stream_and_metadata_user_id() {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let client = AnthropicClient::new(&mock.url(), ANTHROPIC_KEY).unwrap();
    let _ctx = costtrace::with_context([("tenant_id", "acme"), ("user_id", "u_3")]);
    let m = client
        .messages(&MessagesRequest::new(
            "claude-sonnet-4-0",
            1024,
            "Renewal clause?",
        ))
        .await
        .unwrap();
    assert!(m.text().starts_with("The contract's renewal clause"));
    let mut s = client
        .messages_stream(&MessagesRequest::new(
            "claude-3-5-haiku-latest",
            256,
            "Merchant?",
        ))
        .await
        .unwrap();
    let mut events = 0;
    while let Some(ev) = s.next().await {
        ev.unwrap();
        events += 1;
    }
    assert_eq!(events, 16);
    // A stream dropped after its first event: partial, usage so far.
    let mut cut = client
        .messages_stream(&MessagesRequest::new(
            "claude-3-5-haiku-latest",
            256,
            "Merchant?",
        ))
        .await
        .unwrap();
    cut.next().await.unwrap().unwrap();
    drop(cut);

    let u = wait_for_usages(&cap, 3).await;
    assert_eq!(
        u[0].cost_nanos,
        Some(21 * 3000 + 2048 * 3750 + 4096 * 300 + 187 * 15_000)
    );
    assert_eq!(u[1].cost_nanos, Some(25 * 800 + 1800 * 80 + 15 * 4000));
    assert!(!u[1].partial);
    assert!(u[2].partial);
    assert_eq!(
        (u[2].input_tokens, u[2].output_tokens),
        (Some(1825), Some(1))
    );
    let seen = mock.requests();
    assert_eq!(seen[0].headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen[0].json()["metadata"]["user_id"], "u_3");
}
