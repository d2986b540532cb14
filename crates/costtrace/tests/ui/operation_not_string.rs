#[costtrace::tracked(operation = 42)]
fn f() {}

fn main() {}
