//! The supervisor's demo: a small service tree you can watch heal itself.
//!
//! ```text
//! cargo run --example demo                  # runs until Ctrl-C (or SIGTERM)
//! cargo run --example demo -- --for 5       # stops by itself after 5 seconds
//! cargo run --example demo -- --port 7000   # echo server on 127.0.0.1:7000
//! cargo run --example demo -- --logs        # follow the whole log tree live
//! cargo run --example demo -- --metrics 127.0.0.1:9100   # Prometheus metrics at /metrics
//! cargo run --example demo -- --health 127.0.0.1:9100    # and /livez, /readyz, /healthz
//! cargo run --example demo -- --systemd    # a Type=notify service (examples/demo.service)
//! cargo run --example demo -- --status-page 127.0.0.1:8081   # the live status page
//! cargo run --example demo -- --status 2     # the tree's status every 2 seconds
//! cargo run --example demo -- --describe     # the declared tree, then exit
//! cargo run --example demo -- --give-up-after 0   # give up at flaky's first failure
//! ```
//!
//! The tree:
//!
//! ```text
//! root
//! ├── echo        TCP echo server on loopback (try `nc 127.0.0.1 <port>`)
//! ├── metrics     serves /metrics and the probes with --metrics or --health (else Done)
//! ├── status      serves the status page with --status-page (else Done)
//! └── workers     starts its children, then is Done
//!     ├── prober  every second, sends a line to the echo server and checks the reply
//!     ├── ticker  periodic worker
//!     └── flaky   works, and now and then fails; restarted with backoff
//! ```
//!
//! State changes go to stdout as they happen. Logs go to stderr through
//! `tracing_subscriber::fmt`, with the log tree's layer in the same subscriber (the pattern
//! for an application that keeps its own subscriber); with `--logs`, the whole log tree is
//! followed live instead, in the concise terminal form. On Ctrl-C, SIGTERM or the end of
//! `--for`, the tree is cancelled, every runnable returns, and the demo exits 0.
//!
//! Every group may restart at most `--give-up-after` times (default 20) in 10 seconds; past
//! that its parent fails, and when the root does, the tree gives up and the demo exits 1 —
//! so that systemd (`Restart=on-failure`) or Kubernetes starts the process afresh.
//!
//! With `--health`, `curl '127.0.0.1:9100/readyz?verbose'` names the node that keeps the
//! tree unready (flaky, while it waits out its backoff). With `--systemd` the demo speaks
//! sd_notify: `READY=1` once its tree is ready, a `STATUS=` line on every change (see
//! `systemctl status`), watchdog pings, `STOPPING=1`; the README shows how to run it under
//! `systemd-run`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use supervisor::http::{HealthServer, StatusPage};
use supervisor::logtree::{LogTree, LogTreeLayer, ReadOptions, Streamed};
use supervisor::{
    Context, Ended, Intensity, Metrics, NodeState, PrometheusMetrics, Signal, Supervisor, registry,
    runnable, shutdown_signal, supervision_tree,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing_subscriber::prelude::*;

const USAGE: &str =
    "usage: demo [--port <port>] [--for <seconds>] [--logs] [--status <secs>] [--describe]
            [--metrics <addr>] [--health <addr>] [--status-page <addr>] [--systemd]
            [--give-up-after <n>]

  --port <port>     port of the echo server on 127.0.0.1 (default: a free port)
  --for <seconds>   stop after this long (default: run until Ctrl-C or SIGTERM)
  --logs            follow the whole log tree live (concise form, $COLUMNS wide)
  --metrics <addr>  serve Prometheus metrics at http://<addr>/metrics (a loopback address)
  --health <addr>   serve /livez, /readyz and /healthz there too (the same server)
  --status-page <addr>  serve the live status page at http://<addr>/, with restart, stop
                    and start buttons (a loopback address)
  --systemd         speak systemd's notify protocol (run it as a Type=notify service)
  --status <secs>   print the tree's status every <secs> seconds
  --describe        print the declared tree and exit
  --give-up-after <n>  restarts a group may have in 10 s before its parent fails
                    (default 20); the demo exits 1 when the root gives up";

struct Args {
    port: u16,
    run_for: Option<Duration>,
    logs: bool,
    status: Option<Duration>,
    describe: bool,
    metrics: Option<SocketAddr>,
    status_page: Option<SocketAddr>,
    systemd: bool,
    give_up_after: u32,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            port: 0,
            run_for: None,
            logs: false,
            status: None,
            describe: false,
            metrics: None,
            status_page: None,
            systemd: false,
            give_up_after: 20,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--port" => {
                    let v = value("--port")?;
                    parsed.port = v
                        .parse()
                        .map_err(|_| format!("--port {v:?}: not a port number (0-65535)"))?;
                }
                "--for" => parsed.run_for = Some(seconds("--for", &value("--for")?)?),
                "--status" => parsed.status = Some(seconds("--status", &value("--status")?)?),
                "--logs" => parsed.logs = true,
                "--describe" => parsed.describe = true,
                "--give-up-after" => {
                    let v = value("--give-up-after")?;
                    parsed.give_up_after = v
                        .parse()
                        .map_err(|_| format!("--give-up-after {v:?}: not a count of restarts"))?;
                }
                // One server serves both: the metrics and the probes.
                flag @ ("--metrics" | "--health") => {
                    let v = value(flag)?;
                    let addr: SocketAddr = v
                        .parse()
                        .map_err(|_| format!("{flag} {v:?}: not an address like 127.0.0.1:9100"))?;
                    if !addr.ip().is_loopback() {
                        return Err(format!(
                            "{flag} {v:?}: the demo serves on loopback addresses only"
                        ));
                    }
                    if parsed.metrics.is_some_and(|at| at != addr) {
                        return Err(format!(
                            "{flag} {v:?}: --metrics and --health are one server, on one address"
                        ));
                    }
                    parsed.metrics = Some(addr);
                }
                "--status-page" => {
                    let v = value("--status-page")?;
                    let addr: SocketAddr = v.parse().map_err(|_| {
                        format!("--status-page {v:?}: not an address like 127.0.0.1:8081")
                    })?;
                    if !addr.ip().is_loopback() {
                        return Err(format!(
                            "--status-page {v:?}: the demo serves on loopback addresses only"
                        ));
                    }
                    parsed.status_page = Some(addr);
                }
                "--systemd" => parsed.systemd = true,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{flag} {value:?}: not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{flag} {value:?}: must be a non-negative duration"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("demo: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(declared) = registry::find("services") else {
        eprintln!("demo: the `services` tree is not registered");
        return ExitCode::FAILURE;
    };
    if args.describe {
        print!("{}", declared.topology());
        println!(
            "every group without an intensity of its own: at most {} restarts in 10s",
            args.give_up_after
        );
        return ExitCode::SUCCESS;
    }
    // The application's own subscriber, with the log tree's layer beside it: runnables'
    // events reach both. With --logs the log tree is printed instead, so fmt stays quiet.
    let filter = if args.logs { "off" } else { "info" };
    tracing_subscriber::registry()
        .with(LogTreeLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
                ),
        )
        .init();

    let port = Arc::new(AtomicU16::new(args.port));
    let registry = prometheus::Registry::new();
    let Ok(intensity) = Intensity::new(args.give_up_after, Duration::from_secs(10)) else {
        unreachable!("the period is not zero")
    };
    let mut builder = Supervisor::builder()
        .metrics(StatePrinter::spawn())
        .intensity(intensity);
    if args.systemd {
        builder = builder.systemd_notify();
    }
    let endpoint = match args.metrics {
        Some(addr) => match PrometheusMetrics::new(&registry) {
            Ok(exporter) => {
                builder = builder.metrics(exporter);
                Some(MetricsEndpoint { addr, registry })
            }
            Err(e) => {
                eprintln!("demo: cannot export metrics: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let sup = builder.start(services(port, endpoint, args.status_page));
    if args.logs {
        follow_logs(&sup.log_tree());
    }
    if let Some(period) = args.status {
        let sup = sup.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await;
            loop {
                interval.tick().await;
                let status = sup.status();
                print!("{status}");
                let idle: Vec<String> = declared
                    .declared_dns("root")
                    .into_iter()
                    .filter(|dn| status.get(dn).is_none())
                    .collect();
                if !idle.is_empty() {
                    println!("declared, not running: {}", idle.join(", "));
                }
            }
        });
    }

    let reason = tokio::select! {
        reason = stop_requested(args.run_for) => reason,
        ended = sup.clone().wait() => {
            if let Ended::GaveUp { reason } = ended {
                eprintln!("demo: the tree gave up: {reason}");
                return ExitCode::FAILURE;
            }
            println!("the tree ended by itself ({ended:?})");
            return ExitCode::SUCCESS;
        }
    };
    println!("{reason}: shutting down");
    sup.cancel();
    let probe = sup.clone();
    let ended = sup.wait().await;
    let live = probe.live_runnables();
    if live.is_empty() {
        println!("clean shutdown ({ended:?})");
        ExitCode::SUCCESS
    } else {
        eprintln!("still running after shutdown: {live:?}");
        ExitCode::FAILURE
    }
}

/// Prints every entry of the whole tree, backlog then live, in the concise form.
fn follow_logs(tree: &LogTree) {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let reader = match tree.read(
        "",
        ReadOptions::new().backlog_all().stream().with_children(),
    ) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("demo: cannot read the log tree: {e}");
            return;
        }
    };
    for entry in &reader.backlog {
        println!("{}", entry.concise(width));
    }
    if let Some(mut stream) = reader.stream {
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                match item {
                    Streamed::Entry(entry) => println!("{}", entry.concise(width)),
                    Streamed::Missed(n) => println!("... {n} entries missed ..."),
                }
            }
        });
    }
}

/// Resolves with the reason to stop: SIGINT (Ctrl-C), SIGTERM, or the end of `--for`.
async fn stop_requested(run_for: Option<Duration>) -> String {
    let deadline = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        signal = shutdown_signal() => signal.to_string(),
        () = deadline => "time is up".to_owned(),
    }
}

supervision_tree! {
    /// The demo's services: what `--describe` prints.
    fn services(
        port: Arc<AtomicU16>,
        endpoint: Option<MetricsEndpoint>,
        page: Option<SocketAddr>,
    ) {
        /// Closes the connections in flight within 500 ms of its cancellation.
        #[shutdown = 2s]
        echo: echo_server(port.clone()),
        /// Without --metrics it has nothing to do, and ends: transient.
        #[restart = transient]
        metrics: metrics_endpoint(endpoint.clone()),
        /// Without --status-page it has nothing to do, and ends: transient.
        #[restart = transient]
        status: status_page(page),
        workers {
            prober: prober(port.clone()),
            /// Loses nothing when dropped.
            #[shutdown = brutal]
            ticker: ticker(),
            flaky: flaky(),
        },
    }
}

/// The graceful-shutdown pattern for a server: bind, signal Healthy, serve until cancelled,
/// then stop accepting and close the connections in flight.
#[runnable]
async fn echo_server(ctx: Context, port: Arc<AtomicU16>) -> supervisor::Result {
    // Rebind the same port on restart; the first start may pick a free one.
    let listener = TcpListener::bind(("127.0.0.1", port.load(Ordering::SeqCst))).await?;
    let addr = listener.local_addr()?;
    port.store(addr.port(), Ordering::SeqCst);
    tracing::info!("echo server listening on {addr}");
    ctx.signal(Signal::Healthy);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = ctx.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                connections.spawn(echo(stream, peer));
            }
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    // In-flight connections get a moment to finish, then are closed.
    let drained = tokio::time::timeout(Duration::from_millis(500), async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

/// Where `--metrics` serves what.
#[derive(Clone)]
struct MetricsEndpoint {
    addr: SocketAddr,
    registry: prometheus::Registry,
}

/// Serves `/metrics` in the Prometheus text format and Kubernetes' probes (`/livez`,
/// `/readyz`, `/healthz`): a runnable of the tree it reports on. Without `--metrics` or
/// `--health` it has nothing to do, and says so by being Done.
#[runnable]
async fn metrics_endpoint(ctx: Context, endpoint: Option<MetricsEndpoint>) -> supervisor::Result {
    let Some(MetricsEndpoint { addr, registry }) = endpoint else {
        ctx.signal(Signal::Healthy);
        ctx.signal(Signal::Done);
        return Ok(());
    };
    tracing::info!("metrics at http://{addr}/metrics, probes at http://{addr}/readyz");
    let serve = HealthServer::bind(addr).metrics(registry).runnable();
    serve(ctx).await
}

/// Serves the status page (`--status-page`), with the operator's buttons: the demo is
/// on loopback only. Without the flag it has nothing to do, and is Done.
#[runnable]
async fn status_page(ctx: Context, addr: Option<SocketAddr>) -> supervisor::Result {
    let Some(addr) = addr else {
        ctx.signal(Signal::Healthy);
        ctx.signal(Signal::Done);
        return Ok(());
    };
    tracing::info!("status page at http://{addr}/");
    let serve = StatusPage::bind(addr).allow_control().runnable();
    serve(ctx).await
}

async fn echo(mut stream: TcpStream, peer: std::net::SocketAddr) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::debug!("connection from {peer} closed");
}

/// Checks the echo server end to end once a second. A probe that fails is an error: the
/// prober dies and is restarted, and the log says why.
#[runnable]
async fn prober(ctx: Context, port: Arc<AtomicU16>) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = ctx.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let port = port.load(Ordering::SeqCst);
        if port == 0 {
            continue; // The echo server has not bound yet.
        }
        n += 1;
        let started = Instant::now();
        // A probe cut short by the shutdown (the echo server stops at the same moment) is
        // no failure: cancellation is looked at first.
        tokio::select! {
            biased;
            () = ctx.cancelled() => return Ok(()),
            probed = probe(port, n) => probed?,
        }
        tracing::info!("echo round trip {:?}", started.elapsed());
    }
}

/// One round trip to the echo server.
async fn probe(port: u16, n: u64) -> supervisor::Result {
    let line = format!("probe {n}\n");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(line.as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(&mut stream).read_line(&mut reply).await?;
    if reply != line {
        return Err(format!("echo replied {reply:?} to {line:?}").into());
    }
    Ok(())
}

#[runnable]
async fn ticker(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            () = ctx.cancelled() => return Ok(()),
            _ = interval.tick() => {
                ticks += 1;
                tracing::info!(ticks, "tick");
            }
        }
    }
}

/// Does a unit of work every 300 ms; about one in eight fails.
#[runnable]
async fn flaky(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    let mut rng = seed();
    let period = Duration::from_millis(300);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            () = ctx.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng.is_multiple_of(8) {
            return Err("lost the connection to upstream (simulated)".into());
        }
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    nanos | 1
}

/// Prints every state change. [`Metrics`] is called under the supervisor's lock and must
/// not block, so it only queues the change; a separate task does the printing.
struct StatePrinter {
    tx: mpsc::UnboundedSender<(String, NodeState)>,
}

impl StatePrinter {
    fn spawn() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, NodeState)>();
        let started = Instant::now();
        tokio::spawn(async move {
            let mut last: HashMap<String, NodeState> = HashMap::new();
            while let Some((dn, state)) = rx.recv().await {
                let was = last
                    .insert(dn.clone(), state)
                    .map_or("", |s: NodeState| s.name());
                println!(
                    "{:>8.3}s  {dn:<22} {was:>8} → {}",
                    started.elapsed().as_secs_f64(),
                    state.name()
                );
            }
        });
        StatePrinter { tx }
    }
}

impl Metrics for StatePrinter {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        let _ = self.tx.send((dn.to_owned(), state));
    }
}
