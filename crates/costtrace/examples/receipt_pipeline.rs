//! Seed 000's eight usage patterns, end to end: instrumented code, the real
//! recorder, the JSON Lines sink, and then a table of what was recorded.
//!
//! Run: `cargo run -p costtrace --example receipt_pipeline`
//! Records go to `COSTTRACE_SINK`, by default the embedded SQLite store
//! `./costtrace.db`, which is then queried for what the run cost; with
//! `COSTTRACE_SINK=jsonl:FILE` the JSON lines are printed as a table.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::BufRead;

use costtrace::{FutureExt, Record, Usage, batch_scope, scope, tracked};

/// Stands in for an OpenAI call; the instrumented clients record this for you.
fn openai_chat(model: &'static str, input: u64, cached: u64, output: u64) -> String {
    costtrace::record(
        Usage::llm("openai", model)
            .operation("chat")
            .input_tokens(input)
            .cache_read_tokens(cached)
            .output_tokens(output),
    );
    format!("{model} answered")
}

// 2. Decorator pattern, with an explicit operation name.
#[tracked(operation = "receipt_analysis")]
fn analyze_receipt(receipt_id: &str, image_url: &str) -> String {
    let _ = (receipt_id, image_url);
    openai_chat("gpt-4o", 1_850, 1_024, 310)
}

// 3. Runtime context extraction: job_id and batch_id become attributes.
#[tracked]
fn process_batch(items: &[&str], job_id: Option<&str>, batch_id: Option<&str>) -> usize {
    let _ = (job_id, batch_id);
    for _ in items {
        openai_chat("gpt-4o-mini", 420, 0, 60);
    }
    items.len()
}

// 4. Async support.
#[tracked(operation = "async_processing")]
async fn process_async(data: &str) -> usize {
    tokio::task::yield_now().await;
    openai_chat("gpt-4o-mini", data.len() as u64 * 3, 0, 25);
    data.len()
}

// 7. Error recovery: the Err is recorded on the scope, then propagated.
#[derive(Debug)]
struct ModelError(String);
impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[tracked]
fn risky_ai_operation(receipt_id: &str) -> Result<String, ModelError> {
    costtrace::record(
        Usage::llm("anthropic", "claude-3-5-haiku-latest")
            .input_tokens(900)
            .output_tokens(0),
    );
    Err(ModelError(format!(
        "could not parse the total of {receipt_id}"
    )))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = std::env::var("COSTTRACE_SINK").unwrap_or_else(|_| "sqlite:costtrace.db".to_owned());
    let sink_path = sink.strip_prefix("jsonl:").map(str::to_owned);
    // One run id per run, so the store queries below show this run only.
    let run = format!(
        "run-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let _run = costtrace::with_context([("entity_id", run.as_str())]);
    let start_line = sink_path.as_deref().map_or(0, count_lines);
    let guard = costtrace::init()?;

    // 1. Basic scope: everything inside carries job_id.
    {
        let _job = scope("receipt_processing")
            .attr("job_id", "job-123")
            .enter();
        openai_chat("gpt-4o", 2_400, 0, 512);
    }

    analyze_receipt("rcpt-001", "https://example.invalid/r1.png");
    process_batch(&["a", "b", "c"], Some("job-7"), Some("batch-7"));

    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        // 4. An async block in a scope, and a tracked async fn inside it.
        async { process_async("hello receipts").await }
            .in_scope(scope("async_op").attr("tenant_id", "acme"))
            .await
    });

    // 5. Nested scopes: the child inherits job_id and links to its parent.
    scope("parent_operation").attr("job_id", "job-1").run(|| {
        openai_chat("gpt-4o-mini", 300, 0, 40);
        scope("child_operation").run(|| openai_chat("gpt-4o-mini", 200, 0, 20));
    });

    // 6. Batch scope: everything inside is priced at the batch tier.
    batch_scope("batch-123").items(3).run(|| {
        for _ in 0..3 {
            openai_chat("gpt-4o", 1_000, 0, 200);
        }
    });

    // 7. Error recovery.
    if let Err(e) = risky_ai_operation("rcpt-404") {
        println!("risky_ai_operation failed as expected: {e}");
    }

    // 8. Partial failure: count outcomes, keep going.
    {
        let ctx = scope("batch_processing").items(5).enter();
        for (i, item) in ["r1", "r2", "bad", "r4", "worse"].iter().enumerate() {
            if item.starts_with('r') {
                costtrace::record(Usage::service("file_processor").units("pages", i as u64 + 1));
                ctx.success();
            } else {
                ctx.failure(item, "unreadable scan");
            }
        }
    }

    // Seed 004: paid non-AI services inside a task.
    let task_id = format!("upload_{run}");
    scope("upload")
        .attr("task_id", &task_id)
        .attr("doc_id", "doc_xyz789")
        .run(|| {
            costtrace::record(Usage::service("file_processor").units("pages", 10));
            costtrace::record(Usage::service("transformer").units("chunks", 45));
            costtrace::record(
                Usage::llm("acme-selfhosted", "llama-finetune-7")
                    .input_tokens(5_000)
                    .output_tokens(800),
            );
        });

    drop(guard); // flushes
    match sink_path {
        Some(path) => print_table(&path, start_line)?,
        None if sink.starts_with("sqlite:") || sink.starts_with("postgres") => {
            rt.block_on(print_store(&sink, &run, &task_id))?
        }
        None => println!("records went to {sink}"),
    }
    Ok(())
}

/// Reads this run's costs back from the store, as the costtrace API would.
async fn print_store(
    url: &str,
    run: &str,
    task_id: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use costtrace_store::{AnyStore, GroupBy, Store, TenantScope};
    let store = AnyStore::open(url).await?;
    let me = TenantScope::Tenant(run.to_owned());
    println!("\nstored in {url} (this run is entity {run}):");
    println!(
        "{:<28} {:>14} {:>9} {:>8}",
        "model / service", "cost (USD)", "records", "unpriced"
    );
    for row in store.usage_summary(GroupBy::Model, None, None, &me).await? {
        println!(
            "{:<28} {:>14.6} {:>9} {:>8}",
            row.key, row.total_cost_usd, row.record_count, row.unpriced_count
        );
    }
    if let Some(c) = store.entity_cost(run, &me).await? {
        println!(
            "\ntotal: ${:.6} priced, {} unpriced record(s)",
            c.total_cost_usd, c.unpriced_count
        );
    }
    if let Some(t) = store.task_cost(task_id, &me).await? {
        println!(
            "task {task_id}: ${:.6} {:?}",
            t.total_cost_usd, t.breakdown_by_service
        );
    }
    Ok(())
}

fn count_lines(path: &str) -> usize {
    std::fs::File::open(path).map_or(0, |f| std::io::BufReader::new(f).lines().count())
}

fn print_table(path: &str, skip: usize) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut total_nanos = 0i64;
    let mut unpriced = 0;
    println!("\nrecorded to {path}:");
    println!(
        "{:<6} {:<26} {:<44} {:>12}",
        "kind", "scope / model", "attrs", "cost (USD)"
    );
    for line in file.lines().skip(skip) {
        let rec: Record = serde_json::from_str(&line?)?;
        match rec {
            Record::Scope(s) => {
                let mut what = s.name.clone();
                if s.error_occurred {
                    what.push_str(" [failed]");
                }
                if s.failure_count > 0 {
                    what.push_str(&format!(
                        " [{} ok/{} failed]",
                        s.success_count, s.failure_count
                    ));
                }
                println!(
                    "{:<6} {:<26} {:<44} {:>12}",
                    "scope",
                    what,
                    fmt_attrs(&s.attrs),
                    format!("{} tier", s.pricing_tier)
                );
            }
            Record::Usage(u) => {
                let what = u
                    .model
                    .clone()
                    .or(u.service_type.clone())
                    .unwrap_or_default();
                let cost = match u.cost_nanos {
                    Some(n) => {
                        total_nanos += n;
                        format!("{:.6}", costtrace_core::nanos_to_usd(n))
                    }
                    None => {
                        unpriced += 1;
                        "unpriced".to_owned()
                    }
                };
                println!(
                    "{:<6} {:<26} {:<44} {:>12}",
                    "usage",
                    what,
                    fmt_attrs(&u.attrs),
                    cost
                );
            }
            Record::Request(r) => println!("request {}", r.request_id),
        }
    }
    println!(
        "\ntotal priced: ${:.6} ({} nano-USD); unpriced records: {unpriced}",
        costtrace_core::nanos_to_usd(total_nanos),
        total_nanos
    );
    Ok(())
}

fn fmt_attrs(a: &std::collections::BTreeMap<String, String>) -> String {
    let s: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let s = s.join(",");
    if s.len() > 44 {
        format!("{}…", &s[..43])
    } else {
        s
    }
}
