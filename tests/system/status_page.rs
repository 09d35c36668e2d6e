//! The status page (DESIGN §18) over real HTTP, and in a real headless Chromium driven
//! through the DevTools protocol: the tree is rendered, a failure appears live without a
//! reload, a DN's logs follow live, and a restart button restarts the node. Every wait is
//! on the page's DOM (a `MutationObserver`) or on the supervisor's own events.
//!
//! `.ci/run` installs Debian's `chromium` when it is missing and sets
//! `SUPERVISOR_REQUIRE_BROWSER`; without a browser and without that variable the browser
//! test says so and passes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use supervisor::http::StatusPage;
use supervisor::{Context, EventKind, Events, Observed, Signal, Supervisor};

use crate::support::{Cmd, Remote, shut_down};

/// A tree like the demo's: two workers, and the page with control allowed.
fn tree_with_page(api: &Remote, db: &Remote, control: bool) -> (Supervisor, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let page = StatusPage::on(listener);
    let page = if control { page.allow_control() } else { page }.runnable();
    let (api, db) = (api.clone(), db.clone());
    let sup = Supervisor::new(move |ctx: Context| {
        let (api, db, page) = (api.clone(), db.clone(), page.clone());
        async move {
            ctx.run("api", api.runnable())?;
            ctx.run("db", db.runnable())?;
            ctx.run("status", page)?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    });
    (sup, url)
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
fn http(method: &str, url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    // By its length: Chromium's DevTools keep the connection open.
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let status = head[9..12].parse().unwrap();
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        None => {
            reader.read_to_end(&mut body).unwrap();
        }
    }
    (status, String::from_utf8(body).unwrap())
}

async fn started(events: &mut Events, dn: &str) {
    loop {
        if let Some(Observed::Event(e)) = events.next().await
            && &*e.dn == dn
            && matches!(e.kind, EventKind::Started)
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_and_the_controls_over_http() {
    let (api, db) = (Remote::healthy(), Remote::healthy());
    let (sup, url) = tree_with_page(&api, &db, false);
    sup.settled().await;
    let u = url.clone();
    let (tree, page, forbidden, missing) = tokio::task::spawn_blocking(move || {
        (
            http("GET", &u, "/tree.json"),
            http("GET", &u, "/"),
            http("POST", &u, "/control?op=restart&dn=root.api"),
            http("GET", &u, "/logs.json"),
        )
    })
    .await
    .unwrap();
    assert_eq!(tree.0, 200);
    let json: serde_json::Value = serde_json::from_str(&tree.1).unwrap();
    assert_eq!(json["ready"], true);
    assert_eq!(json["control"], false);
    let dns: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["dn"].as_str().unwrap())
        .collect();
    assert_eq!(dns, ["root", "root.api", "root.db", "root.status"]);
    assert_eq!(page.0, 200);
    assert!(page.1.contains("const CONTROL = false;"));
    assert!(
        !page.1.contains("http://") && !page.1.contains("https://"),
        "nothing from elsewhere"
    );
    assert_eq!(forbidden.0, 403);
    assert_eq!(missing.0, 400);
    assert_eq!(api.starts(), 1);

    db.send(Cmd::Fail("disk on fire"));
    sup.settled().await;
    let u = url.clone();
    let crashes = tokio::task::spawn_blocking(move || http("GET", &u, "/crashes.json"))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&crashes.1).unwrap();
    assert_eq!(json[0]["dn"], "root.db");
    assert!(
        json[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("root.db failed: returned error: disk on fire")
    );
    shut_down(sup).await;
}

/// A minimal client of the DevTools protocol: one page's WebSocket, blocking.
struct DevTools {
    socket: TcpStream,
    next_id: u64,
}

impl DevTools {
    fn connect(ws_url: &str) -> DevTools {
        let rest = ws_url.trim_start_matches("ws://");
        let (host, path) = rest.split_once('/').unwrap();
        let mut socket = TcpStream::connect(host).unwrap();
        write!(
            socket,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        DevTools { socket, next_id: 1 }
    }

    fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.socket.write_all(&frame).unwrap();
    }

    fn read_text(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.socket.read_exact(&mut head).unwrap();
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.socket.read_exact(&mut b).unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.socket.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.socket.read_exact(&mut payload).unwrap();
            let opcode = head[0] & 0x0f;
            if opcode == 0x9 || opcode == 0xa {
                continue; // ping, pong
            }
            message.extend_from_slice(&payload);
            if head[0] & 0x80 != 0 {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// Calls `method`, skipping the events that come meanwhile; its `result`.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({ "id": id, "method": method, "params": params });
        self.send_text(&request.to_string());
        loop {
            let answer: serde_json::Value = serde_json::from_str(&self.read_text()).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page, awaiting a promise; its value.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression, "awaitPromise": true, "returnByValue": true
            }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (a JS expression) holds in the page, watching its DOM.
    fn until(&mut self, condition: &str) {
        let waited = self.eval(&format!(
            "new Promise((resolve) => {{
               const check = () => {{ if ({condition}) {{ observer.disconnect(); resolve(true); }} }};
               const observer = new MutationObserver(check);
               observer.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
               setTimeout(() => {{ observer.disconnect(); resolve(false); }}, 30000);
               check();
             }})"
        ));
        assert_eq!(waited, true, "the page never came to show: {condition}");
    }
}

/// A headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: TempDir,
    port: u16,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<String> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Some(path);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

impl Browser {
    fn launch(program: &str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("supervisor-chromium-{}", std::process::id()));
        let mut child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // It says where its DevTools listen on stderr; the rest of stderr is drained.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "chromium exited");
            if let Some(rest) = line
                .trim()
                .strip_prefix("DevTools listening on ws://127.0.0.1:")
            {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Browser {
            child,
            _profile: TempDir(profile),
            port,
        }
    }

    /// The DevTools of its first page.
    fn page(&self) -> DevTools {
        let (_, list) = http(
            "GET",
            &format!("http://127.0.0.1:{}", self.port),
            "/json/list",
        );
        let targets: serde_json::Value = serde_json::from_str(&list).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page");
        DevTools::connect(page["webSocketDebuggerUrl"].as_str().unwrap())
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser_follows_the_tree_live_and_restarts_a_node() {
    let Some(program) = chromium() else {
        assert!(
            std::env::var_os("SUPERVISOR_REQUIRE_BROWSER").is_none(),
            "SUPERVISOR_REQUIRE_BROWSER is set, and no chromium was found"
        );
        eprintln!("no chromium: the browser test of the status page is skipped");
        return;
    };
    let (api, db) = (Remote::healthy(), Remote::healthy());
    let (sup, url) = tree_with_page(&api, &db, true);
    let mut events = sup.events();
    sup.settled().await;

    let browser = Browser::launch(&program);
    let mut page = tokio::task::spawn_blocking(move || {
        let mut page = browser.page();
        page.call("Page.enable", serde_json::json!({}));
        page.call(
            "Page.navigate",
            serde_json::json!({ "url": format!("{url}/") }),
        );
        page.until("document.querySelector('tr[data-dn=\"root.db\"][data-state=\"HEALTHY\"]')");
        page.until("document.getElementById('live').textContent === 'live'");
        // Marked, to tell a reload by: a reload would lose it.
        page.eval("window.notReloaded = true");
        (page, browser)
    })
    .await
    .unwrap();

    // A failure appears without a reload: the row, its error, and its crash report.
    db.send(Cmd::Fail("disk on fire"));
    page = tokio::task::spawn_blocking(move || {
        let (mut p, b) = page;
        p.until("document.querySelector('details[data-dn=\"root.db\"] pre')?.textContent.startsWith('root.db failed: returned error: disk on fire')");
        p.until("[...document.querySelectorAll('tr[data-dn=\"root.db\"] td.error')].some(td => td.textContent === 'returned error: disk on fire')");
        assert_eq!(p.eval("window.notReloaded === true"), true, "no reload");
        // Follow root.api's logs.
        p.eval("document.querySelector('tr[data-dn=\"root.api\"] td.dn').click()");
        // Once the page follows the stream and has shown the backlog.
        p.until("document.getElementById('logs').dataset.dn === 'root.api'");
        (p, b)
    })
    .await
    .unwrap();
    api.context()
        .logger()
        .info("a line logged while the page follows");
    page = tokio::task::spawn_blocking(move || {
        let (mut p, b) = page;
        p.until("document.getElementById('logs').textContent.includes('a line logged while the page follows')");
        // The restart button.
        p.eval("document.querySelector('tr[data-dn=\"root.api\"] button[data-op=\"restart\"]').click()");
        (p, b)
    })
    .await
    .unwrap();
    started(&mut events, "root.api").await;
    sup.settled().await;
    assert_eq!(api.starts(), 2, "restarted by the button");
    let (shot, page) = tokio::task::spawn_blocking(move || {
        let (mut p, b) = page;
        p.until("[...document.querySelectorAll('tr[data-dn=\"root.api\"] td')].some(td => td.textContent === '1')");
        let shot = p.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
        (base64_decode(shot["data"].as_str().unwrap()), (p, b))
    })
    .await
    .unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    // Kept for the README: `SUPERVISOR_SCREENSHOT=docs/status-page.png cargo test ...`.
    if let Some(path) = std::env::var_os("SUPERVISOR_SCREENSHOT") {
        std::fs::write(path, &shot).unwrap();
    }
    // The page is still open, with its two live streams: they end with the stop, which
    // they do not hold up to the shutdown deadline.
    let log = sup.log_tree();
    let probe = sup.clone();
    shut_down(sup).await;
    assert_eq!(
        probe.states()["root.status"],
        supervisor::NodeState::Canceled
    );
    let said = crate::support::texts(&log, "root.status");
    assert!(
        !said.iter().any(|l| l.contains("at the shutdown deadline")),
        "{said:?}"
    );
    drop(page);
}
