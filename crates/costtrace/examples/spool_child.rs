//! A process that records usage and acknowledges what it flushed; the fault
//! tests (`tests/faults.rs`) run it, kill it with SIGKILL, and restart it.
//!
//! `spool_child SINK SPOOL_DIR COUNT RUN_ID`: records COUNT usage records
//! tagged `run_id=RUN_ID, seq=N`, calls `costtrace::flush()` every 500
//! records and prints `acked N` once that flush returned (the records are
//! then in the store or durably in the spool). COUNT 0 only starts the
//! recorder, which replays whatever an earlier process spooled, and exits.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::Write;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, sink, spool, count, run_id] = &args[..] else {
        return Err("usage: spool_child SINK SPOOL_DIR COUNT RUN_ID".into());
    };
    let count: u64 = count.parse()?;
    let guard = costtrace::Config::new()
        .sink(sink.parse()?)
        .spool_dir(spool)
        .flush_interval(Duration::from_millis(20))
        .shutdown_timeout(Duration::from_secs(60))
        .init()?;
    let mut out = std::io::stdout().lock();
    let _run = costtrace::with_context([("run_id", run_id.as_str())]);
    for i in 0..count {
        let _seq = costtrace::with_context([("seq", i)]);
        costtrace::record(
            costtrace::Usage::llm("openai", "gpt-4o")
                .input_tokens(100)
                .output_tokens(10),
        );
        if (i + 1) % 500 == 0 {
            costtrace::flush_timeout(Duration::from_secs(60))?;
            writeln!(out, "acked {}", i + 1)?;
            out.flush()?;
        }
    }
    costtrace::flush_timeout(Duration::from_secs(60))?;
    let h = costtrace::health().unwrap();
    writeln!(
        out,
        "done written={} spooled={} replayed={} dropped={}",
        h.written, h.spooled, h.replayed, h.dropped
    )?;
    drop(guard);
    Ok(())
}
