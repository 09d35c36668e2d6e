//! Child processes as runnables, with real processes. Real time: a process is an outside
//! event. Synchronisation is on the log tree's stream; timeouts only bound a failure.

use std::collections::BTreeSet;
use std::time::Duration;

use supervisor::logtree::{LogEntry, LogTree, RawStream, ReadOptions, Severity, Streamed};
use supervisor::{CommandOptions, NodeState, ProcessSignal, Runnable, Supervisor, run_command};
use tokio::process::Command;

use crate::support::{shut_down, state, texts, tree};

/// A factory of `sh -c script`.
fn sh(script: &str) -> impl Fn() -> Command + Send + Sync + 'static {
    let script = script.to_owned();
    move || {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&script);
        cmd
    }
}

fn text(e: &LogEntry) -> String {
    e.message().to_owned()
}

/// Follows `dn` (with children) until `done` says the entries so far are enough.
async fn follow(tree: &LogTree, dn: &str, done: impl Fn(&[LogEntry]) -> bool) -> Vec<LogEntry> {
    let reader = tree
        .read(
            dn,
            ReadOptions::new().backlog_all().stream().with_children(),
        )
        .unwrap();
    let mut seen = reader.backlog;
    let mut stream = reader.stream.unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(20), async {
        while !done(&seen) {
            match stream.next().await {
                Some(Streamed::Entry(e)) => seen.push(e),
                Some(Streamed::Missed(n)) => panic!("missed {n} entries"),
                None => panic!("log tree gone"),
            }
        }
    })
    .await;
    let texts: Vec<String> = seen.iter().map(text).collect();
    assert!(followed.is_ok(), "timed out; saw {texts:?}");
    seen
}

/// The first line the command wrote, once it has.
async fn first_raw_line(log: &LogTree) -> String {
    let seen = follow(log, "root.cmd", |e| e.iter().any(|e| e.raw().is_some())).await;
    text(seen.iter().find(|e| e.raw().is_some()).unwrap())
}

fn contains(entries: &[LogEntry], needle: &str) -> bool {
    entries.iter().any(|e| text(e).contains(needle))
}

fn start(cmd: impl Runnable) -> Supervisor {
    start_with(Supervisor::builder(), cmd)
}

fn start_with(builder: supervisor::Builder, cmd: impl Runnable) -> Supervisor {
    let cmd = std::sync::Arc::new(cmd);
    builder.start(tree(move |ctx| {
        let cmd = cmd.clone();
        ctx.run("cmd", move |c| cmd(c))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_goes_to_the_raw_log_and_an_exit_is_a_failure() {
    let sup = start(run_command(
        sh("echo out1; echo err1 >&2; echo out2; printf unterminated"),
        CommandOptions::new(),
    ));
    let log = sup.log_tree();
    let seen = follow(&log, "supervisor", |e| contains(e, "root.cmd failed")).await;
    let failure = seen
        .iter()
        .map(text)
        .find(|t| t.contains("root.cmd failed"))
        .unwrap();
    assert_eq!(
        failure.lines().next(),
        Some("root.cmd failed: returned error: `sh` exited: exit status: 0")
    );
    let entries = log
        .read("root.cmd", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog;
    let raw: Vec<String> = entries
        .iter()
        .filter(|e| e.raw().is_some())
        .map(text)
        .collect();
    assert_eq!(
        raw.iter().cloned().collect::<BTreeSet<_>>(),
        ["err1", "out1", "out2", "unterminated"]
            .map(String::from)
            .into()
    );
    // Each line says which stream it came from.
    for e in entries.iter().filter(|e| e.raw().is_some()) {
        let expected = if text(e).starts_with("err") {
            RawStream::Stderr
        } else {
            RawStream::Stdout
        };
        assert_eq!(e.raw().unwrap().stream(), Some(expected), "{}", text(e));
    }
    // Each stream keeps its own order.
    let out: Vec<&String> = raw
        .iter()
        .filter(|t| t.starts_with("out") || *t == "unterminated")
        .collect();
    assert_eq!(out, ["out1", "out2", "unterminated"]);
    assert!(text(&entries[0]).starts_with("started `sh` (pid "));
    shut_down(sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klog_output_becomes_leveled_entries() {
    let script = r#"echo "E$(date -u '+%m%d %H:%M:%S').123456    7 main.go:12] hello klog"
echo "not klog" >&2
exec sleep 1000"#;
    let sup = start(run_command(sh(script), CommandOptions::new().parse_klog()));
    let log = sup.log_tree();
    let seen = follow(&log, "root.cmd", |e| {
        contains(e, "hello klog") && contains(e, "Invalid klog line")
    })
    .await;
    let hello = seen.iter().find(|e| text(e) == "hello klog").unwrap();
    let l = hello.leveled().unwrap();
    assert_eq!(
        (l.severity(), l.file(), l.line()),
        (Severity::Error, "main.go", 12)
    );
    // The line carries a made-up fraction, so it may be a little ahead of now.
    let skew = std::time::SystemTime::now()
        .duration_since(l.timestamp())
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(60),
        "timestamp from the line: {skew:?} off"
    );
    let invalid = seen
        .iter()
        .find(|e| text(e).starts_with("Invalid klog"))
        .unwrap();
    assert_eq!(text(invalid), "Invalid klog line: not klog");
    assert_eq!(invalid.leveled().unwrap().severity(), Severity::Error);
    assert!(seen.iter().all(|e| e.raw().is_none()));
    shut_down(sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_kills_the_process() {
    let sup = start(run_command(
        sh("echo $$; exec sleep 1000"),
        CommandOptions::new(),
    ));
    let log = sup.log_tree();
    let pid: u32 = first_raw_line(&log).await.parse().unwrap();
    assert!(process_exists(pid));
    assert_eq!(state(&sup, "root.cmd"), NodeState::Healthy);
    let probe = sup.clone();
    shut_down(sup).await;
    assert_eq!(state(&probe, "root.cmd"), NodeState::Canceled);
    assert!(!process_exists(pid), "pid {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_forwarded_to_the_process() {
    let (signals, rx) = tokio::sync::mpsc::channel(4);
    let script = r#"trap 'echo got HUP' HUP; trap 'echo got WINCH' WINCH; echo ready
while :; do sleep 0.05; done"#;
    let sup = start(run_command(
        sh(script),
        CommandOptions::new().forward_signals(rx),
    ));
    let log = sup.log_tree();
    follow(&log, "root.cmd", |e| contains(e, "ready")).await;
    signals.send(ProcessSignal::HUP).await.unwrap();
    follow(&log, "root.cmd", |e| contains(e, "got HUP")).await;
    // Any named signal, not only the common few.
    signals.send(ProcessSignal::WINCH).await.unwrap();
    follow(&log, "root.cmd", |e| contains(e, "got WINCH")).await;
    assert_eq!(state(&sup, "root.cmd"), NodeState::Healthy);
    shut_down(sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_is_a_failure_that_says_why() {
    let sup = start(run_command(
        || Command::new("/nonexistent/program"),
        CommandOptions::new(),
    ));
    let seen = follow(&sup.log_tree(), "supervisor", |e| contains(e, "failed")).await;
    let failure = text(seen.iter().find(|e| text(e).contains("failed")).unwrap());
    assert!(
        failure
            .starts_with("root.cmd failed: returned error: cannot start `/nonexistent/program`: "),
        "{failure}"
    );
    shut_down(sup).await;
}

/// Whether `pid` runs: it exists and is not a zombie (an orphan is reaped by init, whenever
/// that comes to it).
fn process_exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A process that is not ours, so cannot be waited for, watched through a pidfd: it becomes
/// readable when the process has exited. Opened while the process runs; `None` if it is gone
/// already.
fn watch(pid: u32) -> Option<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid.cast_signed())?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Whether the watched process exits within a few seconds: the kernel carries out a kill
/// asynchronously, so its end is an event to wait for (`poll(2)` on the pidfd, off the
/// runtime), bounded only against a failure.
async fn gone(watched: Option<std::os::fd::OwnedFd>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let Some(fd) = watched else { return true };
    tokio::task::spawn_blocking(move || {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let limit = Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&limit)).is_ok_and(|ready| ready == 1)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrappers_children_do_not_outlive_the_supervisor() {
    let sup = start(run_command(
        sh("sleep 600 & echo $!; sleep 600 & echo $!; wait"),
        CommandOptions::new(),
    ));
    let log = sup.log_tree();
    let seen = follow(&log, "root.cmd", |e| {
        e.iter().filter(|e| e.raw().is_some()).count() == 2
    })
    .await;
    let pids: Vec<u32> = seen
        .iter()
        .filter(|e| e.raw().is_some())
        .map(|e| text(e).parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| process_exists(p)));
    let watched: Vec<_> = pids.iter().map(|&p| (p, watch(p))).collect();
    let probe = sup.clone();
    shut_down(sup).await;
    for (pid, watched) in watched {
        assert!(gone(watched).await, "pid {pid} outlived wait()");
    }
    let said = texts(&log, "root.cmd");
    assert!(
        said.iter()
            .any(|t| t.starts_with("cancelled: sent SIGTERM to process group ")),
        "{said:?}"
    );
    assert_eq!(state(&probe, "root.cmd"), NodeState::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ignoring_sigterm_is_killed_before_the_grace_runs_out() {
    let sup = start_with(
        Supervisor::builder().shutdown_grace(Duration::from_millis(500)),
        run_command(
            sh("trap '' TERM; echo $$; while :; do sleep 0.05; done"),
            CommandOptions::new(),
        ),
    );
    let log = sup.log_tree();
    let pid: u32 = first_raw_line(&log).await.parse().unwrap();
    let probe = sup.clone();
    shut_down(sup).await;
    assert!(!process_exists(pid));
    let said = texts(&log, "root.cmd");
    let term = format!("cancelled: sent SIGTERM to process group {pid}");
    let kill = format!("still running 400ms after SIGTERM: sent SIGKILL to process group {pid}");
    assert!(said.contains(&term), "{said:?}");
    assert!(said.contains(&kill), "{said:?}");
    assert_eq!(
        said.iter().filter(|t| t.contains("SIGKILL")).count(),
        1,
        "killed once: {said:?}"
    );
    // It returned before the grace ran out: cancelled, not aborted.
    assert_eq!(state(&probe, "root.cmd"), NodeState::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_of_the_factorys_command_holds() {
    let sup = start(run_command(
        || {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(r#"echo "ONLY=$ONLY HOME=${HOME-unset} NOTIFY=${NOTIFY_SOCKET-unset} DIR=$(pwd)"; exec sleep 600"#)
                .env_clear()
                .env("ONLY", "1")
                .env("NOTIFY_SOCKET", "/run/systemd/notify")
                .current_dir("/");
            cmd
        },
        CommandOptions::new(),
    ));
    let line = first_raw_line(&sup.log_tree()).await;
    assert_eq!(line, "ONLY=1 HOME=unset NOTIFY=unset DIR=/");
    shut_down(sup).await;
}
