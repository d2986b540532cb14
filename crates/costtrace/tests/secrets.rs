//! The secrets guard: credentials never reach a record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use costtrace::testing::capture;
use costtrace::{Usage, scope, with_context};

#[test]
fn secret_attributes_are_redacted_in_every_record() {
    let cap = capture();
    {
        let _req = with_context([("tenant_id", "acme"), ("api_key", "secret_123")]);
        let _s = scope("op")
            .attr("password", "hunter2")
            .attr("Authorization", "Bearer abc.def")
            .attr("note", "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa")
            .attr("user_id", "user_123")
            .enter();
        costtrace::record(
            Usage::llm("openai", "gpt-4o").error(
                "401 Unauthorized: Incorrect API key provided: sk-proj-zzzzzzzzzzzzzzzzzzzz",
            ),
        );
    }
    let records = cap.records();
    let json = serde_json::to_string(&records).unwrap();
    for secret in [
        "secret_123",
        "hunter2",
        "abc.def",
        "sk-proj-aaaa",
        "sk-proj-zzzz",
    ] {
        assert!(!json.contains(secret), "{secret} leaked into {json}");
    }
    let s = cap.scope("op").unwrap();
    assert_eq!(s.attrs["api_key"], "[REDACTED]");
    assert_eq!(s.attrs["password"], "[REDACTED]");
    assert_eq!(s.attrs["Authorization"], "[REDACTED]");
    assert_eq!(s.attrs["note"], "[REDACTED]");
    assert_eq!(s.attrs["tenant_id"], "acme", "ordinary values are kept");
    assert_eq!(s.attrs["user_id"], "user_123");
    let u = &cap.usages()[0];
    assert_eq!(
        u.error_message.as_deref(),
        Some("401 Unauthorized: Incorrect API key provided: [REDACTED]")
    );
}

#[test]
fn panic_messages_are_redacted_too() {
    let cap = capture();
    let _ = std::panic::catch_unwind(|| {
        let _s = scope("leaky").enter();
        panic!("bad key sk-ant-api03-aaaaaaaaaaaaaaaaaaaa");
    });
    let s = cap.scope("leaky").unwrap();
    assert_eq!(
        s.error_message.as_deref(),
        Some("panicked: bad key [REDACTED]")
    );
}

#[test]
fn config_debug_shows_the_sink_without_its_password() {
    for url in [
        "postgres://app:s3cret@db/costs",
        "postgres://app@db/costs?password=s3cret",
        "postgres://app@db/costs?sslmode=require&sslpassword=s3cret",
    ] {
        let config = costtrace::Config::new().sink(url.parse().unwrap());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("sink: \"postgres://app"), "{shown}");
        assert!(shown.contains("@db/costs"), "{shown}");
    }
}
