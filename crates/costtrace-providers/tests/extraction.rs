#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fixtures with the real providers' shapes through the [`Meter`], checked
//! against the numbers in the fixtures and costs worked out by hand from the
//! bundled price list (`$/Mtok × 1000` = nano-USD per token).

use costtrace::UsageRecord;
use costtrace_providers::{Api, End, Meter, RequestFacts, prepare_request, prepare_request_bytes};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One call of a fixture through a [`Meter`]: `provider/…` names the
/// provider; the body arrives in chunks of `piece` bytes (default 4096).
struct Call {
    api: Api,
    fixture: &'static str,
    request: serde_json::Value,
    status: u16,
    piece: usize,
    end: End,
}

impl Call {
    fn new(api: Api, fixture: &'static str, request: serde_json::Value) -> Call {
        Call {
            api,
            fixture,
            request,
            status: 200,
            piece: 4096,
            end: End::Complete,
        }
    }

    fn status(mut self, s: u16) -> Call {
        self.status = s;
        self
    }

    fn piece(mut self, n: usize) -> Call {
        self.piece = n;
        self
    }

    fn end(mut self, e: End) -> Call {
        self.end = e;
        self
    }

    /// The record the call makes (exactly one).
    fn run(self) -> UsageRecord {
        let cap = costtrace::testing::capture();
        let mut req = self.request;
        let facts = prepare_request(self.api, &mut req);
        let (provider, _) = self.fixture.split_once('/').unwrap();
        let content_type = if self.fixture.ends_with(".sse") {
            "text/event-stream; charset=utf-8"
        } else {
            "application/json"
        };
        let mut m = Meter::new(provider, self.api, facts);
        m.response(self.status, Some(content_type));
        for c in fixture(self.fixture).chunks(self.piece) {
            m.data(c);
        }
        m.finish(self.end);
        let mut u = cap.usages();
        assert_eq!(u.len(), 1, "one record per call");
        u.remove(0)
    }
}

fn counts(u: &UsageRecord) -> [Option<u64>; 5] {
    [
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    ]
}

#[test]
fn openai_chat_completion_with_cached_prompt() {
    let u = Call::new(
        Api::ChatCompletions,
        "openai/chat.json",
        serde_json::json!({"model": "gpt-4o", "messages": []}),
    )
    .run();
    assert_eq!(u.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(u.operation.as_deref(), Some("chat"));
    assert_eq!(
        counts(&u),
        [Some(1200), Some(300), Some(1024), None, Some(0)]
    );
    // gpt-4o: input $2.50, cached input $1.25, output $10 per Mtok.
    // (1200 - 1024) × 2500 + 1024 × 1250 + 300 × 10000
    assert_eq!(u.cost_nanos, Some(440_000 + 1_280_000 + 3_000_000));
    assert!(!u.partial);
    assert_eq!(u.error_message, None);
    assert_eq!(u.attrs["http_status"], "200");
}

#[test]
fn openai_chat_stream_usage_from_the_last_chunk_however_it_is_split() {
    for piece in [1, 7, 64, 100_000] {
        let u = Call::new(
            Api::ChatCompletions,
            "openai/chat_stream.sse",
            serde_json::json!({"model": "gpt-4o-mini", "stream": true}),
        )
        .piece(piece)
        .run();
        assert_eq!(u.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(counts(&u), [Some(19), Some(9), Some(0), None, Some(0)]);
        // gpt-4o-mini: $0.15 in, $0.60 out: 19 × 150 + 9 × 600
        assert_eq!(u.cost_nanos, Some(8_250), "piece {piece}");
        assert!(!u.partial);
        assert_eq!(u.attrs["stream"], "true");
    }
}

#[test]
fn a_streamed_chat_asks_for_usage_unless_the_caller_said_no() {
    let mut req = serde_json::json!({"model": "m", "stream": true});
    assert!(prepare_request(Api::ChatCompletions, &mut req).usage_injected);
    assert_eq!(req["stream_options"]["include_usage"], true);

    let mut req = serde_json::json!({"model": "m", "stream": true, "stream_options": {"include_usage": false}});
    let facts = prepare_request(Api::ChatCompletions, &mut req);
    assert!(!facts.usage_injected);
    assert_eq!(facts.usage_requested, Some(false));
    assert_eq!(
        req["stream_options"]["include_usage"], false,
        "left as the caller set it"
    );

    let mut req = serde_json::json!({"model": "m", "messages": []});
    assert!(!prepare_request(Api::ChatCompletions, &mut req).usage_injected);
    assert!(
        req.get("stream_options").is_none(),
        "only streams are changed"
    );

    // The same on raw bytes (the gateway's path): rebuilt only when changed.
    let (facts, new) = prepare_request_bytes(
        Api::ChatCompletions,
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
    );
    assert_eq!((facts.usage_requested, new), (Some(false), None));
    let (facts, new) = prepare_request_bytes(
        Api::ChatCompletions,
        br#"{"model":"m","stream":true,"stream_options":{},"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert!(facts.usage_injected);
    let sent: serde_json::Value = serde_json::from_slice(&new.unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["messages"][0]["content"], "x");
    let (facts, new) = prepare_request_bytes(Api::Embeddings, b"not json");
    assert_eq!((facts, new), (RequestFacts::default(), None));
}

#[test]
fn usage_is_asked_for_by_inserting_bytes_not_by_rebuilding_the_body() {
    let body = br#"{"stream":true,"model":"gpt-4o","response_format":{"type":"json_schema","json_schema":{"schema":{"properties":{"reasoning":{},"answer":{}}}}}}"#;
    let (facts, new) = prepare_request_bytes(Api::ChatCompletions, body);
    assert_eq!(
        facts,
        RequestFacts {
            model: Some("gpt-4o".into()),
            stream: true,
            usage_requested: None,
            usage_injected: true,
        }
    );
    let mut expected = br#"{"stream_options":{"include_usage":true},"#.to_vec();
    expected.extend_from_slice(&body[1..]);
    assert_eq!(
        String::from_utf8(new.unwrap()).unwrap(),
        String::from_utf8(expected).unwrap()
    );

    let (facts, new) = prepare_request_bytes(
        Api::ChatCompletions,
        br#"{"stream":true,"stream_options":{"z":1},"b":{"y":2,"x":3}}"#,
    );
    assert!(facts.usage_injected);
    assert_eq!(
        String::from_utf8(new.unwrap()).unwrap(),
        r#"{"stream":true,"stream_options":{"include_usage":true,"z":1},"b":{"y":2,"x":3}}"#
    );
}

#[test]
fn a_stream_without_usage_records_what_is_known_as_partial() {
    let u = Call::new(Api::ChatCompletions, "openai/chat_stream_no_usage.sse", serde_json::json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": false}})).piece(50).run();
    assert_eq!(u.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(counts(&u), [None; 5], "unknown stays unknown");
    assert!(u.partial);
    assert_eq!(u.cost_nanos, None, "never priced as free");
    assert!(u.unpriced_reason.is_some());
    assert!(u.attrs["usage_reported"].starts_with("false"));
}

#[test]
fn a_cut_openai_stream_is_partial_with_the_chunks_seen() {
    let u = Call::new(
        Api::ChatCompletions,
        "openai/chat_stream_cut.sse",
        serde_json::json!({"model": "gpt-4o-mini", "stream": true}),
    )
    .piece(33)
    .end(End::Upstream("connection reset".into()))
    .run();
    assert!(u.partial);
    assert_eq!(u.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(u.attrs["stream_events"], "5");
    assert_eq!(u.attrs["end"], "upstream_broken");
    assert_eq!(
        u.error_message.as_deref(),
        Some("connection to the provider broke: connection reset")
    );
    assert_eq!(u.cost_nanos, None);
}

#[test]
fn openai_embeddings() {
    let u = Call::new(
        Api::Embeddings,
        "openai/embeddings.json",
        serde_json::json!({"model": "text-embedding-3-small", "input": "The food was delicious"}),
    )
    .piece(10)
    .run();
    assert_eq!(u.operation.as_deref(), Some("embedding"));
    assert_eq!(u.input_tokens, Some(8));
    // $0.02 per Mtok = 20 nano-USD per token
    assert_eq!(u.cost_nanos, Some(160));
}

/// A whole answer given as bytes (not a fixture file) through a meter.
fn meter_body(provider: &str, api: Api, request: serde_json::Value, body: &[u8]) -> UsageRecord {
    let cap = costtrace::testing::capture();
    let mut req = request;
    let facts = prepare_request(api, &mut req);
    let mut m = Meter::new(provider, api, facts);
    m.response(200, Some("application/json"));
    m.data(body);
    m.finish(End::Complete);
    cap.usages().remove(0)
}

/// Anthropic's 1-hour cache writes cost 2× the input price, not the
/// 5-minute 1.25×: the part reported in `cache_creation` is priced as such.
#[test]
fn anthropic_one_hour_cache_writes_are_priced_at_their_rate() {
    let body =
        br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",
        "content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":20,"cache_creation_input_tokens":10000,"cache_read_input_tokens":0,
                 "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":10000},
                 "output_tokens":100}}"#;
    let u = meter_body(
        "anthropic",
        Api::Messages,
        serde_json::json!({"model": "claude-sonnet-4-0", "max_tokens": 100, "messages": []}),
        body,
    );
    assert_eq!(u.input_tokens, Some(10_020));
    assert_eq!(u.cache_write_tokens, Some(10_000));
    assert_eq!(u.units.get("cache_write_1h_tokens"), Some(&10_000));
    // $3/M input: 20 × 3,000 + 10,000 × 6,000 (2 × input) + 100 × 15,000.
    assert_eq!(u.cost_nanos, Some(60_000 + 60_000_000 + 1_500_000));
}

/// OpenAI's audio tokens are parts of the prompt and completion counts,
/// priced at the audio rates (`gpt-audio`: $32/M in, $64/M out).
#[test]
fn openai_audio_tokens_are_priced_at_the_audio_rates() {
    let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-audio",
        "choices":[],
        "usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,
                 "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":900,"text_tokens":100},
                 "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":400,"text_tokens":100}}}"#;
    let u = meter_body(
        "openai",
        Api::ChatCompletions,
        serde_json::json!({"model": "gpt-audio", "messages": []}),
        body,
    );
    assert_eq!((u.input_tokens, u.output_tokens), (Some(1000), Some(500)));
    assert_eq!(u.units.get("input_audio_tokens"), Some(&900));
    assert_eq!(u.units.get("output_audio_tokens"), Some(&400));
    // 100 × 2,500 + 900 × 32,000 + 100 × 10,000 + 400 × 64,000
    assert_eq!(
        u.cost_nanos,
        Some(250_000 + 28_800_000 + 1_000_000 + 25_600_000)
    );
    // A text-only call carries no audio units.
    let text = meter_body(
        "openai",
        Api::ChatCompletions,
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        br#"{"model":"gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":5,
            "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}"#,
    );
    assert!(text.units.is_empty(), "{:?}", text.units);
}

/// A Responses stream whose `response.completed` event is longer than an
/// event line the parser keeps (it carries the whole response: here a 6 MB
/// generated image) still yields the usage at its end, and completes.
#[test]
fn a_responses_completed_event_past_4_mib_keeps_its_usage() {
    let cap = costtrace::testing::capture();
    let mut req = serde_json::json!({"model": "gpt-4.1", "input": "draw", "stream": true});
    let facts = prepare_request(Api::Responses, &mut req);
    let mut m = Meter::new("openai", Api::Responses, facts);
    m.response(200, Some("text/event-stream"));
    let image = "A".repeat(6 << 20);
    let stream = format!(
        "event: response.created\n\
         data: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{{\"id\":\"resp_1\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}}}}\n\n\
         event: response.completed\n\
         data: {{\"type\":\"response.completed\",\"sequence_number\":5,\"response\":{{\"id\":\"resp_1\",\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\
         \"output\":[{{\"type\":\"image_generation_call\",\"id\":\"ig_1\",\"status\":\"completed\",\"result\":\"{image}\"}}],\
         \"usage\":{{\"input_tokens\":37,\"input_tokens_details\":{{\"cached_tokens\":0}},\"output_tokens\":220,\
         \"output_tokens_details\":{{\"reasoning_tokens\":0}},\"total_tokens\":257}}}}}}\n\n"
    );
    for c in stream.as_bytes().chunks(64 << 10) {
        m.data(c);
    }
    assert!(m.stream_complete());
    m.finish(End::Complete);
    let u = cap.usages().remove(0);
    assert_eq!(u.model.as_deref(), Some("gpt-4.1-2025-04-14"));
    assert_eq!((u.input_tokens, u.output_tokens), (Some(37), Some(220)));
    assert!(!u.partial);
    assert!(u.cost_nanos.is_some());
}

/// An answer longer than the meter keeps whole (32 MiB: ~2,000 embeddings
/// as JSON floats) still has its usage read, from the last bytes, where
/// `model` and `usage` are.
#[test]
fn an_embeddings_answer_past_32_mib_keeps_its_usage() {
    let cap = costtrace::testing::capture();
    let mut req = serde_json::json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let facts = prepare_request(Api::Embeddings, &mut req);
    let mut m = Meter::new("openai", Api::Embeddings, facts);
    m.response(200, Some("application/json"));
    m.data(br#"{"object":"list","data":["#);
    // 2,100 embeddings of 1,536 floats, ~17 KB each: ~36 MB in all.
    let floats = vec!["-0.0123456789"; 1536].join(",");
    for i in 0..2100 {
        let sep = if i == 0 { "" } else { "," };
        m.data(
            format!(r#"{sep}{{"object":"embedding","index":{i},"embedding":[{floats}]}}"#)
                .as_bytes(),
        );
    }
    m.data(
        br#"],"model":"text-embedding-3-small","usage":{"prompt_tokens":4200,"total_tokens":4200}}"#,
    );
    m.finish(End::Complete);
    let u = cap.usages().remove(0);
    assert_eq!(u.model.as_deref(), Some("text-embedding-3-small"));
    assert_eq!(u.input_tokens, Some(4200));
    assert_eq!(u.cost_nanos, Some(4200 * 20));
    assert!(!u.partial);
}

#[test]
fn openai_responses_with_cached_input_and_reasoning() {
    let u = Call::new(
        Api::Responses,
        "openai/responses.json",
        serde_json::json!({"model": "o4-mini", "input": "…"}),
    )
    .piece(100)
    .run();
    assert_eq!(u.model.as_deref(), Some("o4-mini-2025-04-16"));
    assert_eq!(u.operation.as_deref(), Some("responses"));
    assert_eq!(
        counts(&u),
        [Some(2100), Some(850), Some(1920), None, Some(640)]
    );
    // o4-mini: $1.10 in, $0.275 cached, $4.40 out (reasoning billed as output)
    // 180 × 1100 + 1920 × 275 + 850 × 4400
    assert_eq!(u.cost_nanos, Some(198_000 + 528_000 + 3_740_000));
}

#[test]
fn openai_responses_stream() {
    let u = Call::new(
        Api::Responses,
        "openai/responses_stream.sse",
        serde_json::json!({"model": "o4-mini", "stream": true}),
    )
    .piece(64)
    .run();
    assert_eq!(counts(&u), [Some(37), Some(220), Some(0), None, Some(192)]);
    // 37 × 1100 + 220 × 4400
    assert_eq!(u.cost_nanos, Some(40_700 + 968_000));
    assert!(!u.partial);
}

#[test]
fn provider_errors_are_failed_calls_not_free_ones() {
    let u = Call::new(
        Api::ChatCompletions,
        "openai/error_429.json",
        serde_json::json!({"model": "gpt-4o", "messages": []}),
    )
    .status(429)
    .run();
    assert_eq!(u.model.as_deref(), Some("gpt-4o"), "the requested model");
    assert_eq!(u.attrs["http_status"], "429");
    let msg = u.error_message.as_deref().unwrap();
    assert!(
        msg.starts_with("HTTP 429 rate_limit_exceeded: Rate limit reached for gpt-4o"),
        "{msg}"
    );
    assert_eq!(counts(&u), [None; 5]);
    assert_eq!(u.cost_nanos, None);
    assert_eq!(u.cost_usd, None);

    let u = Call::new(
        Api::ChatCompletions,
        "openai/error_500.json",
        serde_json::json!({"model": "gpt-4o", "stream": true}),
    )
    .status(500)
    .run();
    assert_eq!(
        u.error_message.as_deref(),
        Some(
            "HTTP 500 server_error: The server had an error while processing your request. Sorry about that!"
        )
    );

    let u = Call::new(
        Api::Messages,
        "anthropic/error_529.json",
        serde_json::json!({"model": "claude-sonnet-4-20250514", "max_tokens": 10}),
    )
    .status(529)
    .run();
    assert_eq!(
        u.error_message.as_deref(),
        Some("HTTP 529 overloaded_error: Overloaded")
    );
    assert_eq!(u.cost_nanos, None);
}

#[test]
fn timeouts_and_refused_connections_are_errors() {
    let cap = costtrace::testing::capture();
    let mut m = Meter::new(
        "openai",
        Api::ChatCompletions,
        RequestFacts {
            model: Some("gpt-4o".into()),
            ..RequestFacts::default()
        },
    );
    m.finish(End::Timeout(std::time::Duration::from_millis(1500)));
    let u = &cap.usages()[0];
    assert_eq!(
        u.error_message.as_deref(),
        Some("timeout: no response from the provider within 1500 ms")
    );
    assert_eq!(u.attrs["end"], "timeout");
    assert_eq!(u.cost_nanos, None);
}

#[test]
fn anthropic_message_with_cache_write_and_read() {
    let u = Call::new(
        Api::Messages,
        "anthropic/messages.json",
        serde_json::json!({"model": "claude-sonnet-4-20250514", "max_tokens": 1024}),
    )
    .piece(128)
    .run();
    assert_eq!(u.model.as_deref(), Some("claude-sonnet-4-20250514"));
    // input_tokens counts all prompt tokens: 21 + 2048 written + 4096 read
    assert_eq!(
        counts(&u),
        [Some(6165), Some(187), Some(4096), Some(2048), None]
    );
    // claude-sonnet-4: $3 in, $3.75 cache write, $0.30 cache read, $15 out
    // 21 × 3000 + 2048 × 3750 + 4096 × 300 + 187 × 15000
    assert_eq!(
        u.cost_nanos,
        Some(63_000 + 7_680_000 + 1_228_800 + 2_805_000)
    );
}

#[test]
fn anthropic_stream_takes_start_and_delta_counts() {
    for piece in [1, 13, 100_000] {
        let u = Call::new(
            Api::Messages,
            "anthropic/messages_stream.sse",
            serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true}),
        )
        .piece(piece)
        .run();
        assert_eq!(u.model.as_deref(), Some("claude-3-5-haiku-20241022"));
        assert_eq!(
            counts(&u),
            [Some(1825), Some(15), Some(1800), Some(0), None]
        );
        // claude-3-5-haiku: $0.80 in, $0.08 cache read, $4 out
        // 25 × 800 + 1800 × 80 + 15 × 4000
        assert_eq!(
            u.cost_nanos,
            Some(20_000 + 144_000 + 60_000),
            "piece {piece}"
        );
        assert!(!u.partial);
    }
}

#[test]
fn a_cut_anthropic_stream_keeps_the_input_and_output_so_far() {
    let u = Call::new(
        Api::Messages,
        "anthropic/messages_stream_cut.sse",
        serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true}),
    )
    .piece(40)
    .end(End::ClientGone)
    .run();
    assert!(u.partial);
    assert_eq!(u.attrs["end"], "client_gone");
    assert_eq!(
        u.error_message, None,
        "the caller hung up: not a provider error"
    );
    assert_eq!(counts(&u), [Some(1825), Some(1), Some(1800), Some(0), None]);
    // 25 × 800 + 1800 × 80 + 1 × 4000: what was known when it was cut
    assert_eq!(u.cost_nanos, Some(20_000 + 144_000 + 4_000));
}

#[test]
fn an_error_event_mid_stream_is_recorded() {
    let u = Call::new(
        Api::Messages,
        "anthropic/messages_stream_error.sse",
        serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true}),
    )
    .run();
    assert_eq!(
        u.error_message.as_deref(),
        Some("overloaded_error: Overloaded")
    );
    assert!(u.partial);
    assert_eq!(u.input_tokens, Some(1825));
}

#[test]
fn a_responses_stream_error_event_is_recorded_with_the_usage_so_far() {
    let u = Call::new(
        Api::Responses,
        "openai/responses_stream_error.sse",
        serde_json::json!({"model": "o4-mini", "stream": true}),
    )
    .piece(64)
    .run();
    assert_eq!(
        u.error_message.as_deref(),
        Some("server_error: The server had an error")
    );
    assert!(u.partial);
    assert_eq!(u.model.as_deref(), Some("o4-mini-2025-04-16"));
    assert_eq!(u.attrs["stream_events"], "4");
    assert_eq!(
        counts(&u),
        [None; 5],
        "no usage was reported before the error"
    );
    assert_eq!(u.cost_nanos, None);
}

#[test]
fn dropping_a_meter_mid_stream_records_a_partial_call() {
    let cap = costtrace::testing::capture();
    {
        let mut m = Meter::new("anthropic", Api::Messages, RequestFacts::default());
        m.response(200, Some("text/event-stream"));
        let body = fixture("anthropic/messages_stream.sse");
        m.data(&body[..900]);
    }
    let u = &cap.usages()[0];
    assert!(u.partial);
    assert_eq!(u.attrs["end"], "client_gone");
    assert_eq!(u.input_tokens, Some(1825));
}

#[test]
fn dropping_a_meter_before_the_response_records_a_partial_call() {
    let cap = costtrace::testing::capture();
    drop(Meter::new(
        "openai",
        Api::ChatCompletions,
        RequestFacts {
            model: Some("gpt-4o".into()),
            ..RequestFacts::default()
        },
    ));
    let u = &cap.usages()[0];
    assert!(
        u.partial,
        "the provider may have done (and billed) the work"
    );
    assert_eq!(u.attrs["end"], "client_gone");
    assert_eq!(
        u.error_message, None,
        "the caller hung up: not a provider error, as for cut streams"
    );
    assert_eq!(u.model.as_deref(), Some("gpt-4o"));
    assert_eq!(u.cost_nanos, None);
}
