//! Running runnables in tests.
//!
//! [`harness`] runs a runnable as the root of a fresh supervisor made for tests: panics of
//! runnables propagate to the test, the log tree is printed to the test's output as it
//! fills (captured by the test runner like `println!` when the test runs on tokio's
//! current-thread runtime), and a root that fails with anything but the cancellation error
//! fails the test. [`Harness::finish`] cancels the tree and waits until every runnable has
//! returned, naming the ones still alive every few seconds while it waits.
//!
//! [`#[supervisor::test]`](crate::test) does all of this around a test, and finishes every
//! harness the test made even when the test panics.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use supervisor::{Context, NodeState, Signal, testing};
//!
//! let harness = testing::harness(|ctx: Context| async move {
//!     ctx.signal(Signal::Healthy);
//!     ctx.cancelled().await;
//!     Ok(())
//! });
//! harness.settled().await;
//! assert_eq!(harness.supervisor().states()["root"], NodeState::Healthy);
//! harness.finish().await;
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock::lock;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::is_cancellation;
use crate::logtree::{LogTree, ReadOptions, Streamed};
use crate::{Context, Runnable, Supervisor};

/// How often [`Harness::finish`] names the runnables it is still waiting for.
const NAG_EVERY: Duration = Duration::from_secs(2);

/// A runnable under test, as the root of its own supervisor: see the [module](self).
///
/// Call [`finish`](Harness::finish) at the end of the test (`#[supervisor::test]` does it for
/// every harness the test made). A harness dropped without it cancels its tree, but cannot
/// wait for it, and still fails the test if the root failed.
pub struct Harness {
    inner: Arc<Inner>,
}

struct Inner {
    sup: Supervisor,
    root_errors: Arc<Mutex<Vec<String>>>,
    stop_printing: CancellationToken,
    printer: Mutex<Option<JoinHandle<()>>>,
    finished: AtomicBool,
}

tokio::task_local! {
    /// The harnesses made by the current `#[supervisor::test]`, to finish after it.
    static HARNESSES: Arc<Mutex<Vec<Arc<Inner>>>>;
}

/// Runs `root` as the root of a fresh supervisor for a test: see the [module](self).
///
/// # Panics
///
/// Outside a tokio runtime with time enabled.
#[track_caller]
pub fn harness<R: Runnable>(root: R) -> Harness {
    let root_errors = Arc::new(Mutex::new(Vec::new()));
    let sup = Supervisor::builder()
        .propagate_panics()
        .start(watch_root(root, root_errors.clone()));
    let stop_printing = CancellationToken::new();
    let printer = tokio::spawn(print_logs(sup.log_tree(), stop_printing.clone()));
    let inner = Arc::new(Inner {
        sup,
        root_errors,
        stop_printing,
        printer: Mutex::new(Some(printer)),
        finished: AtomicBool::new(false),
    });
    let _ = HARNESSES.try_with(|all| lock(all).push(inner.clone()));
    Harness { inner }
}

impl Harness {
    /// The supervisor running the tree.
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.sup
    }

    /// The tree's log tree, to check what was logged.
    pub fn log_tree(&self) -> LogTree {
        self.inner.sup.log_tree()
    }

    /// Cancels the tree; [`finish`](Harness::finish) still waits for it.
    pub fn cancel(&self) {
        self.inner.sup.cancel();
    }

    /// Waits until the tree has settled: see [`Supervisor::settled`].
    pub async fn settled(&self) {
        self.inner.sup.settled().await;
    }

    /// Cancels the tree and waits until every runnable has returned, naming the ones still
    /// alive every few seconds (on stderr and at DN `supervisor`); then prints the rest of
    /// the log.
    ///
    /// # Panics
    ///
    /// With the first panic of a runnable, or if the root failed with anything but the
    /// cancellation error: either fails the test.
    pub async fn finish(self) {
        self.inner.clone().finish().await;
    }
}

impl Inner {
    async fn finish(self: Arc<Self>) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        self.sup.cancel();
        let waited = CatchUnwind(Box::pin(wait_naming_the_living(self.sup.clone()))).await;
        self.stop_printing.cancel();
        let printer = lock(&self.printer).take();
        if let Some(printer) = printer {
            let _ = printer.await;
        }
        if let Err(panic) = waited {
            resume_unwind(panic);
        }
        let errors = lock(&self.root_errors).clone();
        if !errors.is_empty() {
            panic!("the root runnable failed: {}", errors.join("; "));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.inner.finished.load(Ordering::SeqCst) {
            return;
        }
        self.inner.sup.cancel();
        let errors = lock(&self.inner.root_errors).clone();
        if !errors.is_empty() && !std::thread::panicking() {
            panic!("the root runnable failed: {}", errors.join("; "));
        }
    }
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("supervisor", &self.inner.sup)
            .field("finished", &self.inner.finished.load(Ordering::SeqCst))
            .finish()
    }
}

/// `root`, recording every error it returns that is not the cancellation error.
fn watch_root<R: Runnable>(root: R, errors: Arc<Mutex<Vec<String>>>) -> impl Runnable {
    let root = Arc::new(root);
    move |ctx: Context| {
        let (run, errors) = (root(ctx.clone()), errors.clone());
        async move {
            let result = run.await;
            if let Err(e) = &result
                && !(ctx.is_cancelled() && is_cancellation(&**e))
            {
                lock(&errors).push(e.to_string());
            }
            result
        }
    }
}

async fn wait_naming_the_living(sup: Supervisor) {
    let waiting = sup.clone().wait();
    tokio::pin!(waiting);
    let log = sup.log_tree().leveled_for("supervisor").ok();
    loop {
        tokio::select! {
            _ = &mut waiting => return,
            () = tokio::time::sleep(NAG_EVERY) => {
                let live = sup.live_runnables();
                let message = format!(
                    "still waiting for {} runnable(s) to return: {}",
                    live.len(),
                    live.join(", ")
                );
                eprintln!("supervisor test harness: {message}");
                if let Some(log) = &log {
                    log.warning(&message);
                }
            }
        }
    }
}

/// Prints every entry of the whole tree until told to stop, then what is left.
async fn print_logs(tree: LogTree, stop: CancellationToken) {
    let Ok(reader) = tree.read(
        "",
        ReadOptions::new().backlog_all().stream().with_children(),
    ) else {
        return;
    };
    let print = |item: Streamed| match item {
        Streamed::Entry(entry) => println!("{entry}"),
        Streamed::Missed(n) => println!("... {n} log entries missed ..."),
    };
    for entry in reader.backlog {
        print(Streamed::Entry(entry));
    }
    let Some(mut stream) = reader.stream else {
        return;
    };
    loop {
        tokio::select! {
            biased;
            item = stream.next() => match item {
                Some(item) => print(item),
                None => return,
            },
            () = stop.cancelled() => break,
        }
    }
    while let Some(item) = stream.try_next() {
        print(item);
    }
}

/// Catches a panic of the future it polls.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// What a `#[supervisor::test]` function may return: `()`, or a `Result` whose error fails
/// the test.
#[doc(hidden)]
pub trait TestReturn {
    fn check(self);
}

impl TestReturn for () {
    fn check(self) {}
}

impl<E: fmt::Display> TestReturn for Result<(), E> {
    #[track_caller]
    fn check(self) {
        if let Err(e) = self {
            panic!("the test returned an error: {e}");
        }
    }
}

/// How `#[supervisor::test]` builds its runtime.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct RuntimeOptions {
    pub multi_thread: bool,
    pub worker_threads: Option<usize>,
    pub start_paused: bool,
}

impl RuntimeOptions {
    fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = if self.multi_thread {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = self.worker_threads {
                b.worker_threads(n);
            }
            b
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        builder.enable_all().start_paused(self.start_paused);
        match builder.build() {
            Ok(runtime) => runtime,
            Err(e) => panic!("cannot build the test's tokio runtime: {e}"),
        }
    }
}

/// The body of a `#[supervisor::test] async fn name()`: runs it, then finishes every
/// harness it made, even if it panicked.
#[doc(hidden)]
pub fn run_body<Fut>(options: RuntimeOptions, body: Fut)
where
    Fut: Future,
    Fut::Output: TestReturn,
{
    options.runtime().block_on(async {
        let made = Arc::new(Mutex::new(Vec::new()));
        let outcome = HARNESSES
            .scope(made.clone(), CatchUnwind(Box::pin(body)))
            .await;
        let unfinished: Vec<Arc<Inner>> = lock(&made).drain(..).collect();
        let mut cleanup_panic = None;
        for inner in unfinished {
            if let Err(panic) = CatchUnwind(Box::pin(inner.finish())).await {
                cleanup_panic.get_or_insert(panic);
            }
        }
        match (outcome, cleanup_panic) {
            (Err(panic), _) | (Ok(_), Some(panic)) => resume_unwind(panic),
            (Ok(returned), None) => returned.check(),
        }
    });
}

/// The body of a `#[supervisor::test] async fn name(ctx: Context) -> supervisor::Result`:
/// runs it once as the root runnable of a harness, then finishes the harness.
#[doc(hidden)]
pub fn run_root<F, Fut>(options: RuntimeOptions, body: F)
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = crate::Result> + Send + 'static,
{
    run_body(options, async move {
        let (done, result) = tokio::sync::oneshot::channel();
        let once = Mutex::new(Some((body, done)));
        let h = harness(move |ctx: Context| {
            let taken = lock(&once).take();
            async move {
                // The body runs once: a root restarted after it returned only waits.
                if let Some((body, done)) = taken {
                    let _ = done.send(body(ctx.clone()).await);
                }
                ctx.cancelled().await;
                Ok(())
            }
        });
        let result = result.await;
        h.finish().await;
        if let Ok(Err(e)) = result {
            panic!("the test returned an error: {e}");
        }
    });
}
