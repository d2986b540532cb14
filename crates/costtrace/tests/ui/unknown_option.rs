#[costtrace::tracked(operaton = "x")]
fn f() {}

fn main() {}
