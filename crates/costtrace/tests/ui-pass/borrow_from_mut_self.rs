//! A sync method returning a borrow of `&mut self` compiles and is recorded.

use std::collections::HashMap;

struct Entry {
    hits: u32,
}

struct Registry {
    map: HashMap<String, Entry>,
}

impl Registry {
    #[costtrace::tracked]
    fn slot(&mut self, job_id: &str) -> &mut Entry {
        self.map.get_mut(job_id).unwrap()
    }

    #[costtrace::tracked]
    fn find(&mut self, job_id: &str) -> Option<&mut Entry> {
        if job_id.is_empty() {
            return None;
        }
        self.map.get_mut(job_id)
    }

    #[costtrace::tracked]
    fn checked<'a>(&'a mut self, job_id: &str) -> Result<&'a mut Entry, String> {
        let e = self.map.get_mut(job_id).ok_or(format!("no {job_id}"))?;
        Ok(e)
    }
}

fn main() {
    let cap = costtrace::testing::capture();
    let mut r = Registry {
        map: HashMap::from([("j".to_owned(), Entry { hits: 0 })]),
    };
    r.slot("j").hits += 1;
    assert!(r.find("").is_none());
    r.find("j").unwrap().hits += 1;
    assert!(r.checked("x").is_err());
    r.checked("j").unwrap().hits += 1;
    assert_eq!(r.map["j"].hits, 3);
    let scopes = cap.scopes();
    assert_eq!(scopes.len(), 5);
    assert_eq!(scopes[0].name, "slot");
    assert_eq!(scopes[0].attrs["job_id"], "j");
    assert_eq!(scopes[3].name, "checked");
    assert_eq!(scopes[3].error_message.as_deref(), Some("no x"));
    assert!(!scopes[4].error_occurred);
}
