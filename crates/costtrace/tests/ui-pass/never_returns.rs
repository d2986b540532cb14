//! A function returning `!` compiles; its panic is recorded.

#[costtrace::tracked]
fn never(job_id: &str) -> ! {
    panic!("gave up on {job_id}")
}

#[costtrace::tracked]
async fn never_async(task_id: u32) -> ! {
    panic!("task {task_id} gave up")
}

fn main() {
    let cap = costtrace::testing::capture();
    assert!(std::panic::catch_unwind(|| never("j-1")).is_err());
    let s = cap.scope("never").unwrap();
    assert_eq!(s.attrs["job_id"], "j-1");
    assert_eq!(s.error_message.as_deref(), Some("panicked: gave up on j-1"));
    let _ = never_async;
}
