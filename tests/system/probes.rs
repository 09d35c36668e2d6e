//! Kubernetes' probe endpoints (DESIGN §16) over real loopback TCP connections, byte for
//! byte against the conventions of `k8s.io/apiserver/pkg/server/healthz`. Real time: the
//! tests wait on responses and state changes, never on the clock.

use std::time::Duration;

use supervisor::http::{HealthServer, Probes};
use supervisor::{Backoff, Context, Intensity, NodeState, PrometheusMetrics, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Cmd, Recorder, Remote, tree};

/// One response, as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

fn parse(raw: &[u8]) -> Answer {
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path` on a connection of its own, read to its end.
async fn get(port: u16, path: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse(&raw)
}

/// A tree of a probe server and a database that becomes Healthy when told; the port.
async fn probed() -> (Supervisor, Remote, Recorder, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probes = std::sync::Arc::new(HealthServer::on(listener).runnable());
    let db = Remote::silent();
    let d = db.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            let probes = probes.clone();
            ctx.run("probes", move |ctx: Context| probes(ctx))?;
            ctx.run("db", d.runnable())
        }));
    recorder.wait_for("root.probes", NodeState::Healthy).await;
    (sup, db, recorder, port)
}

#[tokio::test]
async fn readyz_names_the_node_at_fault_until_the_tree_is_ready() {
    let (sup, db, recorder, port) = probed().await;
    let unready = get(port, "/readyz").await;
    assert_eq!(unready.status, 500);
    assert_eq!(
        unready.body,
        "[+]root ok\n[-]root.db failed: reason withheld\n[+]root.probes ok\nreadyz check failed\n"
    );
    assert_eq!(
        unready.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(unready.header("x-content-type-options"), Some("nosniff"));
    let one = get(port, "/readyz/root.db").await;
    assert_eq!(
        (one.status, one.body.as_str()),
        (
            500,
            "internal server error: starting: has not signalled Healthy\n"
        )
    );
    let excluded = get(port, "/readyz?exclude=root.db&verbose").await;
    assert_eq!(excluded.status, 200);
    assert_eq!(
        excluded.body,
        "[+]root ok\n[+]root.db excluded: ok\n[+]root.probes ok\nreadyz check passed\n"
    );

    db.send(Cmd::Signal(supervisor::Signal::Healthy));
    recorder.wait_for("root.db", NodeState::Healthy).await;
    let ready = get(port, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok"));
    assert_eq!(
        ready.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let verbose = get(port, "/readyz?verbose").await;
    assert_eq!(
        verbose.body,
        "[+]root ok\n[+]root.db ok\n[+]root.probes ok\nreadyz check passed\n"
    );
    assert_eq!(get(port, "/readyz/root.db").await.body, "ok");
    let unknown = get(port, "/readyz?exclude=nope&verbose").await;
    assert_eq!(
        unknown.body,
        "[+]root ok\n[+]root.db ok\n[+]root.probes ok\nwarn: some health checks cannot be \
         excluded: no matches for \"nope\"\nreadyz check passed\n"
    );
    sup.cancel();
    sup.wait().await;
}

#[tokio::test]
async fn livez_and_healthz_pass_while_children_fail() {
    let (sup, db, recorder, port) = probed().await;
    for endpoint in ["livez", "healthz"] {
        let plain = get(port, &format!("/{endpoint}")).await;
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok"));
        let verbose = get(port, &format!("/{endpoint}?verbose")).await;
        assert_eq!(
            verbose.body,
            format!("[+]supervisor ok\n{endpoint} check passed\n")
        );
        assert_eq!(
            get(port, &format!("/{endpoint}/supervisor")).await.body,
            "ok"
        );
    }
    // A child's failure is the supervisor's to handle: the process is still live.
    db.send(Cmd::Fail("lost the database"));
    recorder.wait_for("root.db", NodeState::Dead).await;
    assert_eq!(get(port, "/livez").await.status, 200);
    let missing = get(port, "/nothing/here").await;
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "404 page not found\n")
    );
    assert_eq!(get(port, "/readyz/root.nope").await.status, 404);
    sup.cancel();
    sup.wait().await;
}

#[tokio::test]
async fn livez_fails_once_the_tree_gave_up() {
    use tower_service::Service;
    let sup = Supervisor::builder()
        .intensity(Intensity::new(0, Duration::from_secs(60)).unwrap())
        .start(|_ctx: Context| async move { Err("cannot start".into()) });
    let mut probes = Probes::new(&sup);
    let probe = sup.clone();
    assert!(sup.wait().await.is_failure());
    let request = http::Request::get("/livez").body(()).unwrap();
    let answer = probes.call(request).await.unwrap();
    assert_eq!(answer.status(), 500);
    let request = http::Request::get("/livez/supervisor").body(()).unwrap();
    let one = probes.call(request).await.unwrap();
    assert_eq!(one.status(), 500);
    assert!(!probe.health().is_ready());
}

#[tokio::test]
async fn metrics_are_served_beside_the_probes() {
    let registry = prometheus::Registry::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::sync::Arc::new(
        HealthServer::on(listener)
            .metrics(registry.clone())
            .runnable(),
    );
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(PrometheusMetrics::new(&registry).unwrap())
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            let server = server.clone();
            ctx.run("probes", move |ctx: Context| server(ctx))
        }));
    recorder.wait_for("root.probes", NodeState::Healthy).await;
    let metrics = get(port, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{metrics:?}"
    );
    assert!(
        metrics.body.contains(
            "supervisor_dn_state_total{dn=\"root.probes\",state=\"NODE_STATE_HEALTHY\"} 1"
        ),
        "{}",
        metrics.body
    );
    sup.cancel();
    sup.wait().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_the_tree_stops() {
    let (sup, _db, _recorder, port) = probed().await;
    // A keep-alive connection, left open after one answer.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: probe\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert_eq!(parse(&buf[..n]).body, "ok");

    // The tree shuts down ...
    sup.cancel();
    sup.clone().wait().await;
    // ... and the open connection is closed with it: nothing of the server outlives wait.
    let n = stream.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed");
    assert!(sup.live_runnables().is_empty());
}

#[tokio::test]
async fn a_restarted_server_serves_again_on_the_same_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::sync::Arc::new(HealthServer::on(listener).runnable());
    let recorder = Recorder::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Context>();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .start(tree(move |ctx| {
            let (server, tx) = (server.clone(), tx.clone());
            ctx.run("probes", move |ctx: Context| {
                let _ = tx.send(ctx.clone());
                server(ctx)
            })
        }));
    recorder.wait_for("root.probes", NodeState::Healthy).await;
    assert_eq!(get(port, "/livez").await.body, "ok");
    // The server cancels itself: it ends, and is restarted after its backoff.
    let first = rx.recv().await.unwrap();
    first.cancellation_token().cancel();
    recorder
        .wait_for_nth("root.probes", NodeState::Healthy, 2)
        .await;
    assert_eq!(get(port, "/livez").await.body, "ok");
    sup.cancel();
    sup.wait().await;
}
