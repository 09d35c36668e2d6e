//! Child processes as runnables.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc};

use crate::logtree::{LineBuffer, Logger, RawLogger, klog};
use crate::{Context, Runnable, Signal};

/// How [`run_command`] treats its process.
///
/// # Examples
///
/// ```
/// use supervisor::{CommandOptions, ProcessSignal};
///
/// let (reload, signals) = tokio::sync::mpsc::channel(1);
/// let options = CommandOptions::new().parse_klog().forward_signals(signals);
/// # let _ = (reload, options, ProcessSignal::Hup);
/// ```
#[derive(Debug, Default)]
pub struct CommandOptions {
    klog: bool,
    signals: Option<mpsc::Receiver<ProcessSignal>>,
}

impl CommandOptions {
    /// Raw output, no signal forwarding.
    pub fn new() -> Self {
        CommandOptions::default()
    }

    /// Parses stdout and stderr as klog lines (Kubernetes components) into leveled entries;
    /// a line that is not klog becomes an ERROR entry `Invalid klog line: <line>`.
    pub fn parse_klog(mut self) -> Self {
        self.klog = true;
        self
    }

    /// Sends the signals received on `signals` to the process while it runs (the channel
    /// is read only then, by whichever incarnation is running).
    ///
    /// Delivery is best effort, as signals are: a process may be starting, exiting or
    /// masking them. For something that must happen (a configuration reload), confirm it
    /// and retry, or have the process also check periodically. Signals are sent with the
    /// system's `kill(1)`, so forwarding works on Unix only; a failed delivery is logged at
    /// the runnable's DN.
    pub fn forward_signals(mut self, signals: mpsc::Receiver<ProcessSignal>) -> Self {
        self.signals = Some(signals);
        self
    }
}

/// A Unix signal to forward to a process: see [`CommandOptions::forward_signals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProcessSignal {
    /// `SIGHUP`, often "reload your configuration".
    Hup,
    /// `SIGINT`.
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGTERM`, "shut down gracefully".
    Term,
    /// `SIGKILL`.
    Kill,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

impl ProcessSignal {
    /// The signal's name without `SIG`, as `kill -s` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            ProcessSignal::Hup => "HUP",
            ProcessSignal::Int => "INT",
            ProcessSignal::Quit => "QUIT",
            ProcessSignal::Term => "TERM",
            ProcessSignal::Kill => "KILL",
            ProcessSignal::Usr1 => "USR1",
            ProcessSignal::Usr2 => "USR2",
        }
    }
}

impl fmt::Display for ProcessSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

/// Runs a child process as a runnable: started on every (re)start of the node, killed
/// (`SIGKILL`) when its context is cancelled, and failed (`Dead`) when it exits by itself,
/// whatever its status, as a service is not expected to end.
///
/// The runnable signals `Healthy` once the process has started. Its stdout and stderr go
/// to the node's log as raw lines, each with its own line buffer, or as leveled entries
/// with [`CommandOptions::parse_klog`]. Stdin is closed.
///
/// The process is built anew for each start from what `std` lets us read back of `cmd`:
/// the program, arguments, environment changes and working directory. Settings `std` does
/// not expose (`env_clear`, user and group ids, `pre_exec`, stdio) are not carried over;
/// wrap the program in a shell or a small launcher if you need them.
///
/// # Examples
///
/// ```no_run
/// use supervisor::{CommandOptions, Context, Runnable, Signal, run_command};
/// use tokio::process::Command;
///
/// fn kubelet() -> impl Runnable {
///     let mut cmd = Command::new("/usr/bin/kubelet");
///     cmd.arg("--v=2");
///     run_command(cmd, CommandOptions::new().parse_klog())
/// }
///
/// async fn node(ctx: Context) -> supervisor::Result {
///     ctx.run("kubelet", kubelet())?;
///     ctx.signal(Signal::Healthy);
///     ctx.signal(Signal::Done);
///     Ok(())
/// }
/// # let _ = node;
/// ```
pub fn run_command(cmd: Command, options: CommandOptions) -> impl Runnable {
    let spec = Arc::new(Spec::of(&cmd));
    let klog = options.klog;
    let signals = options.signals.map(|rx| Arc::new(Mutex::new(rx)));
    move |ctx: Context| {
        let (spec, signals) = (spec.clone(), signals.clone());
        async move { run(ctx, &spec, klog, signals).await }
    }
}

/// What can be read back of a `Command`, to build it again.
#[derive(Debug)]
struct Spec {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
}

impl Spec {
    fn of(cmd: &Command) -> Spec {
        let cmd = cmd.as_std();
        Spec {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(ToOwned::to_owned).collect(),
            envs: cmd
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect(),
            dir: cmd.get_current_dir().map(ToOwned::to_owned),
        }
    }

    fn build(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (key, value) in &self.envs {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

enum Event {
    Cancelled,
    Exited(std::io::Result<ExitStatus>),
    OutputClosed,
    Signal(Option<ProcessSignal>),
}

/// How long output is still read after the process exits. A process whose own children
/// keep its stdout open would otherwise hold the runnable forever.
const DRAIN: Duration = Duration::from_secs(1);

async fn run(
    ctx: Context,
    spec: &Spec,
    klog: bool,
    signals: Option<Arc<Mutex<mpsc::Receiver<ProcessSignal>>>>,
) -> crate::Result {
    let program = spec.program.to_string_lossy().into_owned();
    let mut child = spec
        .build()
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let pid = child.id();
    ctx.logger().info(format_args!(
        "started `{program}` (pid {})",
        pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    ));
    ctx.signal(Signal::Healthy);

    let output = pump_output(&ctx, child.stdout.take(), child.stderr.take(), klog);
    tokio::pin!(output);
    let mut output_open = true;
    let mut signals = match &signals {
        Some(rx) => Some(rx.lock().await),
        None => None,
    };
    let status = loop {
        let event = tokio::select! {
            () = ctx.cancelled() => Event::Cancelled,
            status = child.wait() => Event::Exited(status),
            () = &mut output, if output_open => Event::OutputClosed,
            signal = async { signals.as_mut()?.recv().await }, if signals.is_some() => {
                Event::Signal(signal)
            }
        };
        match event {
            Event::Cancelled => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                if output_open {
                    let _ = tokio::time::timeout(DRAIN, &mut output).await;
                }
                return Ok(());
            }
            Event::Exited(status) => break status,
            Event::OutputClosed => output_open = false,
            Event::Signal(Some(signal)) => forward(&ctx, pid, signal).await,
            Event::Signal(None) => signals = None,
        }
    };
    if output_open {
        let _ = tokio::time::timeout(DRAIN, &mut output).await;
    }
    match status {
        Ok(status) => Err(format!("`{program}` exited: {status}").into()),
        Err(e) => Err(format!("cannot wait for `{program}`: {e}").into()),
    }
}

/// Reads stdout and stderr to the end, each into its own sink.
async fn pump_output(
    ctx: &Context,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    klog: bool,
) {
    tokio::join!(
        pump(stdout, Sink::new(ctx, klog)),
        pump(stderr, Sink::new(ctx, klog))
    );
}

async fn pump(source: Option<impl AsyncRead + Unpin>, mut sink: Sink) {
    let Some(mut source) = source else { return };
    let mut buf = vec![0u8; 8192];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => sink.write(&buf[..n]),
        }
    }
}

/// Where one output stream of a process goes. Dropping it writes an unterminated last line.
enum Sink {
    Raw(RawLogger),
    Klog(Logger, LineBuffer),
}

impl Sink {
    fn new(ctx: &Context, klog: bool) -> Sink {
        if klog {
            Sink::Klog(ctx.logger(), LineBuffer::default())
        } else {
            Sink::Raw(ctx.raw_logger())
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match self {
            Sink::Raw(raw) => {
                let _ = std::io::Write::write_all(raw, bytes);
            }
            Sink::Klog(logger, line) => line.push(bytes, |text, _| klog_line(logger, &text)),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Klog(logger, line) = self {
            line.finish(|text, _| klog_line(logger, &text));
        }
    }
}

fn klog_line(logger: &Logger, line: &str) {
    match klog::parse(line, SystemTime::now()) {
        Some(entry) => logger.inject(entry),
        None => logger.error(format_args!("Invalid klog line: {line}")),
    }
}

async fn forward(ctx: &Context, pid: Option<u32>, signal: ProcessSignal) {
    let Some(pid) = pid else { return };
    let sent = Command::new("kill")
        .args(["-s", signal.name(), &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match sent {
        Ok(status) if status.success() => {}
        Ok(status) => ctx.logger().warning(format_args!(
            "could not send {signal} to pid {pid}: kill {status}"
        )),
        Err(e) => ctx
            .logger()
            .warning(format_args!("could not send {signal} to pid {pid}: {e}")),
    }
}
