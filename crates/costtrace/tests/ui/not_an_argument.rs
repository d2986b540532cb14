#[costtrace::tracked(fields(job))]
fn f(job_id: &str) {
    let _ = job_id;
}

fn main() {}
