//! The test harness and `#[supervisor::test]`.
//!
//! What the harness prints goes to the test runner's captured output, which a test cannot
//! see from inside; those behaviours are checked by running an `#[ignore]`d probe test of
//! this binary in a child process and reading what the runner printed for it.

use std::time::Duration;

use supervisor::logtree::ReadOptions;
use supervisor::{Context, NodeState, Signal, testing};

use crate::support::serve;

#[supervisor::test(start_paused = true)]
async fn a_test_body_runs_as_the_root_and_starts_children(ctx: Context) -> supervisor::Result {
    ctx.run("child", serve)?;
    ctx.signal(Signal::Healthy);
    assert_eq!(ctx.dn(), "root");
    Ok(())
}

#[supervisor::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_thread_flavor_works() {
    let h = testing::harness(serve);
    h.settled().await;
    assert_eq!(h.supervisor().states()["root"], NodeState::Healthy);
    h.finish().await;
}

#[supervisor::test(start_paused = true)]
#[should_panic(expected = "the test returned an error: wrong answer")]
async fn an_error_from_the_test_body_fails_the_test(_ctx: Context) -> supervisor::Result {
    Err("wrong answer".into())
}

#[supervisor::test(start_paused = true)]
#[should_panic(expected = "the root runnable failed: cancelled with the wrong error")]
async fn a_failing_root_fails_the_test() {
    let h = testing::harness(|ctx: Context| async move {
        ctx.cancelled().await;
        Err("cancelled with the wrong error".into())
    });
    h.settled().await;
    // The cancellation error would be fine; a plain error after cancel is not.
    h.finish().await;
}

#[supervisor::test(start_paused = true)]
#[should_panic(expected = "a runnable panicked")]
async fn a_runnable_panic_reaches_the_test() {
    let h = testing::harness(|ctx: Context| async move {
        ctx.signal(Signal::Healthy);
        panic!("a runnable panicked");
    });
    h.finish().await;
}

#[supervisor::test(start_paused = true)]
async fn a_runnable_ignoring_cancellation_is_named_then_aborted() {
    let h = testing::harness(|ctx: Context| async move {
        ctx.run("stubborn", |ctx: Context| async move {
            ctx.signal(Signal::Healthy);
            std::future::pending::<()>().await;
            Ok(())
        })?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    h.settled().await;
    let log = h.log_tree();
    let started = tokio::time::Instant::now();
    h.finish().await;
    // Aborted after the default grace period; named twice while waiting (at 2 s and 4 s).
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let sup_log: Vec<String> = log
        .read("supervisor", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
        .iter()
        .map(|e| e.leveled().unwrap().message().to_owned())
        .collect();
    let nagged = sup_log
        .iter()
        .filter(|m| *m == "still waiting for 1 runnable(s) to return: root.stubborn")
        .count();
    assert_eq!(nagged, 2, "{sup_log:?}");
    assert!(
        sup_log
            .iter()
            .any(|m| m.starts_with("root.stubborn failed: aborted"))
    );
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "the root runnable failed: bad root")]
async fn a_harness_dropped_without_finish_still_fails_the_test() {
    let h = testing::harness(|_ctx: Context| async { Err("bad root".into()) });
    // Wait until the root has failed, then drop the harness: the drop reports it.
    let reader = h
        .log_tree()
        .read("supervisor", ReadOptions::new().backlog_all().stream())
        .unwrap();
    let failed = |m: &str| m.starts_with("root failed");
    if !reader.backlog.iter().any(|e| failed(e.message())) {
        let mut stream = reader.stream.unwrap();
        while let Some(item) = stream.next().await {
            if matches!(item, supervisor::logtree::Streamed::Entry(e) if failed(e.message())) {
                break;
            }
        }
    }
    drop(h);
}

/// Probe for `the_harness_prints_logs_and_cleans_up_after_a_panic`: logs, then panics.
#[supervisor::test(start_paused = true)]
#[ignore = "run by another test in a child process"]
async fn probe_logs_then_panics() {
    let h = testing::harness(|ctx: Context| async move {
        ctx.run("worker", |ctx: Context| async move {
            let guard = PrintOnDrop;
            tracing::info!("hello from the probe");
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            drop(guard);
            Ok(())
        })?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    });
    h.settled().await;
    panic!("the probe panics on purpose");
}

struct PrintOnDrop;

impl Drop for PrintOnDrop {
    fn drop(&mut self) {
        println!("probe worker dropped");
    }
}

#[test]
fn the_harness_prints_logs_and_cleans_up_after_a_panic() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "harness::probe_logs_then_panics",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the probe fails");
    assert!(stdout.contains("the probe panics on purpose"), "{stdout}");
    // The log tree reached the captured output, in the full text form.
    let logged = stdout
        .lines()
        .find(|l| l.contains("hello from the probe"))
        .unwrap_or_else(|| panic!("no log line in:\n{stdout}"));
    assert!(logged.starts_with("root.worker "), "{logged}");
    // The tree was cancelled and waited for after the panic.
    assert!(stdout.contains("probe worker dropped"), "{stdout}");
}
