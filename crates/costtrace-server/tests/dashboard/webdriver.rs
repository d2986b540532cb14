//! A small W3C WebDriver client over plain HTTP/1.1 on `TcpStream` (no TLS
//! stack, no async): just enough to drive chromedriver — sessions, navigation,
//! script execution, clicks and typing, screenshots and the browser log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a page may take to show what a step waits for (generous: the
/// machine may be busy compiling).
const WAIT: Duration = Duration::from_secs(30);

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.1 exchange (`Connection: close`); answers status and body text.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut raw = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        raw.resize(n, 0);
        r.read_exact(&mut raw).unwrap();
    } else {
        r.read_to_end(&mut raw).unwrap();
    }
    (status, headers, String::from_utf8_lossy(&raw).into_owned())
}

/// A free loopback port (released before use; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running chromedriver, killed on drop.
pub struct Driver {
    pub addr: String,
    child: Child,
}

impl Driver {
    pub fn start(binary: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let driver = Driver {
            addr: format!("127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(&driver.addr).is_ok() {
                let (status, _, body) = http(&driver.addr, "GET", "/status", &[], b"");
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if status == 200 && v["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; deleted (browser closed) on drop.
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
    shots: PathBuf,
}

impl<'d> Session<'d> {
    pub fn new(driver: &'d Driver, chromium: &Path, profile: &Path, shots: PathBuf) -> Session<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,1100",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let (status, _, body) = http(
            &driver.addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            caps.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 200, "new session: {v}");
        let id = v["value"]["sessionId"].as_str().unwrap().to_owned();
        std::fs::create_dir_all(&shots).unwrap();
        Session { driver, id, shots }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("/session/{}{path}", self.id);
        let (status, _, text) = http(
            &self.driver.addr,
            method,
            &url,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` until it returns something other than null/false/"".
    pub fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.exec(script, args.clone());
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("failed-{}", what.replace(' ', "-")));
                let page = self.exec("return document.getElementById('app').innerText", json!([]));
                let logs = self.logs();
                panic!("timed out waiting for {what}; page text:\n{page}\nbrowser log: {logs:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Text of the first element matching `css`, once it exists.
    pub fn text(&self, css: &str) -> String {
        self.wait_for(
            css,
            "const e = document.querySelector(arguments[0]); return e && e.innerText.trim();",
            json!([css]),
        )
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Waits until the element `css` has exactly `want` as its text.
    pub fn wait_text(&self, css: &str, want: &str) {
        let script = "const e = document.querySelector(arguments[0]); return !!e && e.innerText.trim() === arguments[1];";
        let deadline = Instant::now() + WAIT;
        while self.exec(script, json!([css, want])) != true {
            if Instant::now() > deadline {
                let got = self.exec(
                    "const e = document.querySelector(arguments[0]); return e && e.innerText;",
                    json!([css]),
                );
                self.screenshot(&format!("failed-{}", css.replace(['#', ' ', '.'], "")));
                let logs = self.logs();
                panic!("{css}: want {want:?}, got {got}\nbrowser log: {logs:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        self.wait_for(
            css,
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        );
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// A real click (pointer events through the browser), not `el.click()`.
    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Clears the input `css` and types `text` into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        if !text.is_empty() {
            self.cmd(
                "POST",
                &format!("/element/{e}/value"),
                Some(json!({ "text": text })),
            );
        }
    }

    /// Saves a PNG of the viewport as `<shots>/<name>.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Browser console and network log entries since the last call.
    pub fn logs(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let url = format!("/session/{}", self.id);
        let _ = std::panic::catch_unwind(|| http(&self.driver.addr, "DELETE", &url, &[], b""));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
}
