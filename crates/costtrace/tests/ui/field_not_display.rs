struct Opaque;

#[costtrace::tracked(fields(payload))]
fn f(payload: Opaque) {
    let _ = payload;
}

fn main() {}
