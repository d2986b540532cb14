#[costtrace::tracked]
struct S;

fn main() {}
