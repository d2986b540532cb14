//! Exit codes and messages for bad arguments, unreadable files and stores
//! that cannot be reached, as `costtrace --help` documents them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{costtrace, ok, stderr};

#[test]
fn help_documents_the_exit_codes() {
    let help = ok(&["--help"]);
    for line in [
        "Exit codes:",
        "2  bad arguments",
        "3  an input file",
        "4  the store could not be opened or reached",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
}

#[test]
fn bad_arguments_exit_with_2() {
    let out = costtrace(&["demo", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--no-such-flag"));
    let out = costtrace(&["demo", "--database-url", "mysql://db/costs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unsupported store URL"));
    // A password in a URL never reaches the output, whatever goes wrong.
    let out = costtrace(&["demo", "--database-url", "postgress://u:hunter2@h/db"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("postgress://u:***@h/db"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn passwords_in_store_urls_never_reach_the_output() {
    // Nothing listens on port 1: the store cannot be opened.
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/costtrace",
        "postgres://127.0.0.1:1/costtrace?user=u&password=hunter2",
    ] {
        let out = costtrace(&["demo", "--database-url", url]);
        assert_eq!(out.status.code(), Some(4), "{url}: {}", stderr(&out));
        let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains("hunter2"), "{url}: {all}");
        let out = costtrace(&[
            "gateway",
            "--upstream",
            "openai=http://127.0.0.1:1",
            "--keys",
            url,
        ]);
        assert_eq!(out.status.code(), Some(4), "{url}: {}", stderr(&out));
        assert!(!stderr(&out).contains("hunter2"), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("opening the key store"));
    }
}

#[test]
fn unreadable_files_exit_with_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = costtrace(&[
        "--prices",
        missing.to_str().unwrap(),
        "demo",
        "--database-url",
        &common::db(&dir),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}

#[test]
fn unreachable_stores_exit_with_4() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    for url in [
        "postgres://postgres@127.0.0.1:1/costtrace".to_owned(),
        format!("sqlite:{}", dir.path().join("no/such/dir/x.db").display()),
    ] {
        let out = costtrace(&["demo", "--database-url", &url]);
        assert_eq!(out.status.code(), Some(4), "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("opening the store"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn every_store_command_exits_with_4_when_the_store_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    let url = "postgres://postgres@127.0.0.1:1/costtrace";
    let commands: [&[&str]; 6] = [
        &["report"],
        &["tail"],
        &["reprice", "--since", "2025-01-01"],
        &["import", file],
        &["keys", "list"],
        &["serve", "--port", "0"],
    ];
    for args in commands {
        let out = common::command()
            .args(args)
            .args(["--database-url", url])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("opening the store"), "{args:?}");
    }
}
