//! Inner attributes in the body stay in the body.

#[costtrace::tracked]
#[inline]
fn with_inner(job_id: &str) -> u32 {
    #![allow(unused_variables)]
    let unused = 1;
    job_id.len() as u32
}

struct S;

impl S {
    /// Doc comments stay outer attributes.
    #[costtrace::tracked(operation = "s.method")]
    fn method(&self) -> Result<u32, String> {
        #![allow(clippy::needless_return)]
        return Err("failed".to_owned());
    }
}

fn main() {
    let cap = costtrace::testing::capture();
    assert_eq!(with_inner("j-1"), 3);
    assert!(S.method().is_err());
    let scopes = cap.scopes();
    assert_eq!(scopes[0].name, "with_inner");
    assert_eq!(scopes[0].attrs["job_id"], "j-1");
    assert_eq!(scopes[1].name, "s.method");
    assert_eq!(scopes[1].error_message.as_deref(), Some("failed"));
}
