//! The mock provider on its own, for trying the gateway or a client by hand:
//!
//! ```sh
//! cargo run -p costtrace-providers --features mock --example mock_provider -- 127.0.0.1:9090
//! costtrace gateway --listen 127.0.0.1:8080 --upstream openai=http://127.0.0.1:9090 \
//!     --upstream anthropic=http://127.0.0.1:9090
//! curl -s http://127.0.0.1:8080/openai/v1/chat/completions -H 'x-costtrace-tenant: acme' \
//!     -d '{"model":"gpt-4o","messages":[]}'
//! ```

use costtrace_providers::mock::MockProvider;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned())
        .parse()?;
    let mock = MockProvider::bind(addr).await?;
    eprintln!(
        "mock provider at {} (OpenAI base URL {}/v1, Anthropic {}); Ctrl-C stops",
        mock.url(),
        mock.url(),
        mock.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
