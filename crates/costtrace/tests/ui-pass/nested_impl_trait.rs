//! `impl Trait` nested inside the return type compiles and is recorded.

use std::fmt::Display;

#[costtrace::tracked]
fn pair(job_id: &str) -> (impl Display, u32) {
    if job_id == "early" {
        return (0, 0);
    }
    (job_id.len(), 7)
}

#[costtrace::tracked]
fn array() -> [impl Display; 2] {
    [1u8, 2]
}

#[costtrace::tracked]
fn nested(fail: bool) -> Result<Option<impl Iterator<Item = u32>>, String> {
    if fail {
        return Err("nothing".to_owned());
    }
    Ok(Some(0..2))
}

fn main() {
    let cap = costtrace::testing::capture();
    let (d, n) = pair("early");
    assert_eq!((d.to_string(), n), ("0".to_owned(), 0));
    let (d, n) = pair("j-1");
    assert_eq!((d.to_string(), n), ("3".to_owned(), 7));
    assert_eq!(array().map(|d| d.to_string()), ["1", "2"]);
    assert!(nested(true).is_err());
    let scopes = cap.scopes();
    assert_eq!(scopes.len(), 4);
    assert_eq!(scopes[1].attrs["job_id"], "j-1");
    assert_eq!(scopes[3].name, "nested");
    assert_eq!(scopes[3].error_message.as_deref(), Some("nothing"));
}
