//! Requests per second through `supervisor::server` against the same hyper service served
//! bare — hyper-util's auto builder with `TokioExecutor`, each connection a detached
//! `tokio::spawn`, no graceful stop — in the same run, over loopback TCP, in alternating
//! rounds. Prints the median of each and their ratio.
//!
//! ```text
//! cargo bench --bench server --features server
//! ```
//!
//! Two loads, each on a multi-thread runtime of two workers (what users run) and on the
//! current-thread runtime:
//!
//! - HTTP/1.1: 16 keep-alive connections, each sending its requests one after another;
//! - HTTP/2: 4 connections, each with 16 streams at a time (so every request is a stream,
//!   spawned on the server's executor: a task of the node, or a bare `tokio::spawn`).
//!
//! The clients (hyper's own) run on the same runtime as the server, as the same load for
//! both, so the ratio is the server's cost; the absolute figures are the machine's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use supervisor::server::Server;
use supervisor::{Context, Signal, Supervisor};
use tokio::net::{TcpListener, TcpStream};

/// Alternating rounds of each server; the medians are reported. Short rounds keep the two
/// of a pair close in time, so that the machine's drift (shared, with a clock that wanders)
/// moves both alike; many of them keep the median steady.
const ROUNDS: usize = 41;
/// Requests per round, over all connections.
const REQUESTS: usize = 6_400;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
}

/// The service served bare, as hyper-util's documentation serves one, with the settings
/// the supervised server uses (a timer for the head's timeout, `TCP_NODELAY`).
async fn bare(listener: TcpListener) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

fn supervised(listener: std::net::TcpListener) -> Supervisor {
    let api = Server::on(listener, service_fn(hello)).runnable();
    Supervisor::new(move |ctx: Context| {
        let api = api.clone();
        async move {
            ctx.run("api", api)?;
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        }
    })
}

#[derive(Clone, Copy)]
enum Load {
    Http1,
    Http2,
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://bench/").body(Empty::new()).unwrap()
}

/// Runs one round of `load` against `addr`; requests per second.
async fn round(addr: SocketAddr, load: Load) -> f64 {
    let started = Instant::now();
    let mut clients = Vec::new();
    match load {
        Load::Http1 => {
            let connections = 16;
            for _ in 0..connections {
                clients.push(tokio::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .unwrap();
                    let driver = tokio::spawn(connection);
                    for _ in 0..REQUESTS / connections {
                        let response = sender.send_request(get()).await.unwrap();
                        response.into_body().collect().await.unwrap();
                    }
                    drop(sender);
                    let _ = driver.await;
                }));
            }
        }
        Load::Http2 => {
            let (connections, streams) = (4, 16);
            for _ in 0..connections {
                let stream = TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (sender, connection) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .unwrap();
                tokio::spawn(connection);
                for _ in 0..streams {
                    let mut sender = sender.clone();
                    clients.push(tokio::spawn(async move {
                        for _ in 0..REQUESTS / (connections * streams) {
                            let response = sender.send_request(get()).await.unwrap();
                            response.into_body().collect().await.unwrap();
                        }
                    }));
                }
            }
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    REQUESTS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

async fn compare(load: Load) -> (f64, f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_addr = listener.local_addr().unwrap();
    let bare = tokio::spawn(bare(listener));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours_addr = listener.local_addr().unwrap();
    let sup = supervised(listener);
    sup.ready().await;
    // A round of each to warm up (connections, allocator, caches), not counted.
    round(bare_addr, load).await;
    round(ours_addr, load).await;
    let (mut floor, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let (b, o) = if i % 2 == 0 {
            let b = round(bare_addr, load).await;
            (b, round(ours_addr, load).await)
        } else {
            let o = round(ours_addr, load).await;
            (round(bare_addr, load).await, o)
        };
        floor.push(b);
        ours.push(o);
        ratios.push(o / b);
    }
    bare.abort();
    sup.cancel();
    sup.wait().await;
    (median(floor), median(ours), median(ratios))
}

/// Measured rounds of `--one`: with the warm-up, 51,200 requests.
const ONE_ROUNDS: usize = 7;

/// `server --one <bare|ours> <http1|http2> [multi-thread]`: one server alone, for a
/// profiler (callgrind counts each one's instructions per request, `perf` samples where a
/// multi-thread runtime spends its time): a warm-up round and seven measured rounds, on the
/// current-thread runtime unless asked.
fn one(which: &str, load: &str, flavour: &str) {
    let load = match load {
        "http2" => Load::Http2,
        _ => Load::Http1,
    };
    let rt = runtime(flavour).enable_all().build().unwrap();
    let which = which.to_owned();
    let rate = rt.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sup = if which == "bare" {
            listener.set_nonblocking(true).unwrap();
            tokio::spawn(bare(TcpListener::from_std(listener).unwrap()));
            None
        } else {
            let sup = supervised(listener);
            sup.ready().await;
            Some(sup)
        };
        round(addr, load).await;
        let mut rates = Vec::new();
        for _ in 0..ONE_ROUNDS {
            rates.push(round(addr, load).await);
        }
        let rate = median(rates);
        if let Some(sup) = sup {
            sup.cancel();
            sup.wait().await;
        }
        rate
    });
    println!("{rate:.0} requests/s");
}

/// The current-thread runtime, or a multi-thread one of two workers for any other name.
fn runtime(name: &str) -> tokio::runtime::Builder {
    if name == "current-thread" {
        return tokio::runtime::Builder::new_current_thread();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    builder
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one") {
        let runtime = args.get(i + 3).map_or("current-thread", String::as_str);
        return one(&args[i + 1], &args[i + 2], runtime);
    }
    println!(
        "{:<26} {:>14} {:>14} {:>16}",
        "load, runtime", "bare req/s", "ours req/s", "ours/bare (med)"
    );
    for (name, load) in [("HTTP/1.1", Load::Http1), ("HTTP/2", Load::Http2)] {
        for flavour in ["multi-thread(2)", "current-thread"] {
            let rt = runtime(flavour).enable_all().build().unwrap();
            // Driven from a task on the runtime, which competes for its workers as an
            // application's code does.
            let (floor, ours, ratio) =
                rt.block_on(async { tokio::spawn(compare(load)).await.unwrap() });
            println!(
                "{:<26} {floor:>14.0} {ours:>14.0} {ratio:>16.3}",
                format!("{name}, {flavour}")
            );
        }
    }
}
