//! Child processes as runnables (DESIGN §9).
//!
//! Each start runs a fresh `Command` from the user's factory in a process group of its own,
//! so that the supervisor reaches everything the command starts: on cancellation the whole
//! group gets `SIGTERM`, then `SIGKILL` before the node's shutdown grace runs out, and
//! whatever is left of the group when its leader exits is killed. Signals go by system call
//! (`rustix`), never by running a `kill` program.

use std::ffi::OsStr;
use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::process::{Pid, Signal as RawSignal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc};

use crate::logtree::{LineBuffer, Logger, RawLogger, RawStream, klog};
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
/// # let _ = (reload, options, ProcessSignal::HUP);
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
    /// is read only then, by whichever incarnation is running), by a `kill(2)` system call.
    ///
    /// Delivery is best effort, as signals are: a process may be starting, exiting or
    /// masking them. For something that must happen (a configuration reload), confirm it
    /// and retry, or have the process also check periodically. A failed delivery is logged
    /// at the runnable's DN. The signal goes to the process itself, not to its group: a
    /// wrapper script must pass it on.
    pub fn forward_signals(mut self, signals: mpsc::Receiver<ProcessSignal>) -> Self {
        self.signals = Some(signals);
        self
    }
}

/// A Unix signal to send to a process: see [`CommandOptions::forward_signals`].
///
/// Every named signal of the platform is available: the common ones as constants, any
/// other by its number through [`from_raw`](ProcessSignal::from_raw).
///
/// # Examples
///
/// ```
/// use supervisor::ProcessSignal;
///
/// assert_eq!(ProcessSignal::HUP.to_string(), "SIGHUP");
/// assert_eq!(ProcessSignal::from_raw(15), Some(ProcessSignal::TERM));
/// assert_eq!(ProcessSignal::from_raw(0), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessSignal(i32);

impl ProcessSignal {
    /// `SIGHUP`, often "reload your configuration".
    pub const HUP: Self = ProcessSignal(RawSignal::HUP.as_raw());
    /// `SIGINT`.
    pub const INT: Self = ProcessSignal(RawSignal::INT.as_raw());
    /// `SIGQUIT`.
    pub const QUIT: Self = ProcessSignal(RawSignal::QUIT.as_raw());
    /// `SIGTERM`, "shut down gracefully".
    pub const TERM: Self = ProcessSignal(RawSignal::TERM.as_raw());
    /// `SIGKILL`.
    pub const KILL: Self = ProcessSignal(RawSignal::KILL.as_raw());
    /// `SIGUSR1`.
    pub const USR1: Self = ProcessSignal(RawSignal::USR1.as_raw());
    /// `SIGUSR2`.
    pub const USR2: Self = ProcessSignal(RawSignal::USR2.as_raw());
    /// `SIGALRM`.
    pub const ALRM: Self = ProcessSignal(RawSignal::ALARM.as_raw());
    /// `SIGCONT`.
    pub const CONT: Self = ProcessSignal(RawSignal::CONT.as_raw());
    /// `SIGSTOP`.
    pub const STOP: Self = ProcessSignal(RawSignal::STOP.as_raw());
    /// `SIGTSTP`.
    pub const TSTP: Self = ProcessSignal(RawSignal::TSTP.as_raw());
    /// `SIGWINCH`.
    pub const WINCH: Self = ProcessSignal(RawSignal::WINCH.as_raw());

    /// The signal numbered `signal` on this platform, if it is a named signal (real-time
    /// signals are not: they have no fixed numbers).
    pub const fn from_raw(signal: i32) -> Option<Self> {
        match RawSignal::from_named_raw(signal) {
            Some(_) => Some(ProcessSignal(signal)),
            None => None,
        }
    }

    /// The signal's number on this platform.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    fn to_rustix(self) -> RawSignal {
        match RawSignal::from_named_raw(self.0) {
            Some(signal) => signal,
            None => unreachable!("a ProcessSignal is a named signal"),
        }
    }
}

/// The names of the signals every Unix has, for messages; others print by number.
const NAMES: [(RawSignal, &str); 20] = [
    (RawSignal::HUP, "SIGHUP"),
    (RawSignal::INT, "SIGINT"),
    (RawSignal::QUIT, "SIGQUIT"),
    (RawSignal::ILL, "SIGILL"),
    (RawSignal::TRAP, "SIGTRAP"),
    (RawSignal::ABORT, "SIGABRT"),
    (RawSignal::BUS, "SIGBUS"),
    (RawSignal::FPE, "SIGFPE"),
    (RawSignal::KILL, "SIGKILL"),
    (RawSignal::USR1, "SIGUSR1"),
    (RawSignal::SEGV, "SIGSEGV"),
    (RawSignal::USR2, "SIGUSR2"),
    (RawSignal::PIPE, "SIGPIPE"),
    (RawSignal::ALARM, "SIGALRM"),
    (RawSignal::TERM, "SIGTERM"),
    (RawSignal::CHILD, "SIGCHLD"),
    (RawSignal::CONT, "SIGCONT"),
    (RawSignal::STOP, "SIGSTOP"),
    (RawSignal::TSTP, "SIGTSTP"),
    (RawSignal::WINCH, "SIGWINCH"),
];

impl fmt::Display for ProcessSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(s, _)| s.as_raw() == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for ProcessSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessSignal({self})")
    }
}

/// Runs a child process as a runnable: `command` makes the process's `Command`, afresh on
/// every (re)start of the node; the process is failed (`Dead`) when it exits by itself,
/// whatever its status, as a service is not expected to end.
///
/// Every setting the factory makes holds on every start: environment (`env_clear`
/// included), working directory, user and group ids, `pre_exec` hooks. The supervisor then
/// sets what it needs: stdin is closed, stdout and stderr are piped into the log, the
/// `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` variables are removed (the
/// supervisor speaks to systemd for the whole program, DESIGN §16), and the process leads a
/// new process group of its own, which replaces any process group the factory set: the
/// group is how the supervisor reaches every process the command starts.
///
/// The runnable signals `Healthy` once the process has started. Its stdout and stderr go
/// to the node's log as raw lines marked with their stream ([`RawStream`]), each with its
/// own line buffer, or as leveled entries with [`CommandOptions::parse_klog`].
///
/// On cancellation the process group gets `SIGTERM`; if the process has not exited four
/// fifths into the node's shutdown timeout ([`Shutdown`](crate::Shutdown): the builder's
/// grace unless its spec says otherwise), the group gets `SIGKILL` (the rest of the
/// timeout is for the kill to be reaped and the last output read). Under
/// `Shutdown::Infinity` it waits for the process however long it takes; under
/// `Shutdown::Brutal` the runnable is dropped at once, which kills the group. Whenever the process has
/// exited, anything left in its group is killed with `SIGKILL`. Each signal sent is logged
/// at the node's DN. Should the runnable be dropped all the same (aborted), the group is
/// killed then. So nothing the command started outlives
/// [`Supervisor::wait`](crate::Supervisor::wait), except a process that left the group on
/// purpose (`setsid`, a daemon's double fork).
///
/// Unix only (the `process` feature).
///
/// # Examples
///
/// ```no_run
/// use supervisor::{CommandOptions, Context, Runnable, Signal, run_command};
/// use tokio::process::Command;
///
/// fn kubelet() -> impl Runnable {
///     run_command(
///         || {
///             let mut cmd = Command::new("/usr/bin/kubelet");
///             cmd.arg("--v=2").env_clear().env("PATH", "/usr/bin");
///             cmd
///         },
///         CommandOptions::new().parse_klog(),
///     )
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
pub fn run_command<F>(command: F, options: CommandOptions) -> impl Runnable
where
    F: Fn() -> Command + Send + Sync + 'static,
{
    let command = Arc::new(command);
    let klog = options.klog;
    let signals = options.signals.map(|rx| Arc::new(Mutex::new(rx)));
    move |ctx: Context| {
        let (command, signals) = (command.clone(), signals.clone());
        async move { run(ctx, command(), klog, signals).await }
    }
}

/// [`run_command`] for the common case: `program` with `args`, and otherwise the
/// supervisor's own environment and working directory.
///
/// # Examples
///
/// ```
/// use supervisor::{CommandOptions, run_program};
///
/// let sleeper = run_program("sleep", ["600"], CommandOptions::new());
/// # let _ = sleeper;
/// ```
pub fn run_program<P, I, S>(program: P, args: I, options: CommandOptions) -> impl Runnable
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref().to_owned();
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    run_command(
        move || {
            let mut cmd = Command::new(&program);
            cmd.args(&args);
            cmd
        },
        options,
    )
}

/// The variables by which systemd reaches the supervisor, which a child must not inherit.
const SYSTEMD_VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How long output is still read after the process exits, at most. A process whose own
/// children keep its stdout open would otherwise hold the runnable forever.
const DRAIN: Duration = Duration::from_secs(1);

enum Event {
    Cancelled,
    Exited(std::io::Result<ExitStatus>),
    OutputClosed,
    Signal(Option<ProcessSignal>),
}

async fn run(
    ctx: Context,
    mut cmd: Command,
    klog: bool,
    signals: Option<Arc<Mutex<mpsc::Receiver<ProcessSignal>>>>,
) -> crate::Result {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    for variable in SYSTEMD_VARIABLES {
        cmd.env_remove(variable);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let log = ctx.logger();
    let Some(pid) = child.id().and_then(|id| Pid::from_raw(id.cast_signed())) else {
        return Err(format!("`{program}` exited as it started").into());
    };
    let mut group = ProcessGroup {
        pgid: pid,
        log: log.clone(),
        reaped: false,
    };
    log.info(format_args!(
        "started `{program}` (pid {pid}, in a process group of its own)",
        pid = pid.as_raw_pid()
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
            Event::Cancelled => break None,
            Event::Exited(status) => break Some(status),
            Event::OutputClosed => output_open = false,
            Event::Signal(Some(signal)) => forward(&log, pid, signal),
            Event::Signal(None) => signals = None,
        }
    };
    let (drain, killed) = match status {
        None => {
            // `Infinity` is `Duration::MAX`: four fifths of it, without overflowing.
            let grace = ctx.shutdown_grace();
            let killed = terminate(&mut child, &group, grace - grace / 5).await;
            (DRAIN.min(grace / 10), killed)
        }
        Some(_) => (DRAIN, false),
    };
    group.reaped = true;
    if !killed {
        group.kill_leftovers();
    }
    if output_open {
        let _ = tokio::time::timeout(drain, &mut output).await;
    }
    match status {
        None => Ok(()),
        Some(Ok(status)) => Err(format!("`{program}` exited: {status}").into()),
        Some(Err(e)) => Err(format!("cannot wait for `{program}`: {e}").into()),
    }
}

/// Stops the process on cancellation: `SIGTERM` to its group, and `SIGKILL` if it has not
/// exited by `kill_after`. Whether the group got `SIGKILL`.
async fn terminate(child: &mut Child, group: &ProcessGroup, kill_after: Duration) -> bool {
    group.signal(RawSignal::TERM, "cancelled");
    if tokio::time::timeout(kill_after, child.wait()).await.is_ok() {
        return false;
    }
    group.signal(
        RawSignal::KILL,
        &format!("still running {kill_after:?} after SIGTERM"),
    );
    let _ = child.wait().await;
    true
}

/// The process group the command leads. Dropped before its leader has been reaped (the
/// runnable was aborted), it kills the whole group.
struct ProcessGroup {
    pgid: Pid,
    log: Logger,
    /// The leader has exited and been waited for.
    reaped: bool,
}

impl ProcessGroup {
    fn signal(&self, signal: RawSignal, why: &str) {
        let pgid = self.pgid.as_raw_pid();
        let signal_name = ProcessSignal(signal.as_raw());
        match rustix::process::kill_process_group(self.pgid, signal) {
            Ok(()) => self.log.info(format_args!(
                "{why}: sent {signal_name} to process group {pgid}"
            )),
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => self.log.warning(format_args!(
                "{why}: could not send {signal_name} to process group {pgid}: {e}"
            )),
        }
    }

    /// Kills what is left of the group once its leader has exited.
    fn kill_leftovers(&self) {
        if rustix::process::test_kill_process_group(self.pgid).is_ok() {
            self.signal(
                RawSignal::KILL,
                "the process has exited; what is left of its group",
            );
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(RawSignal::KILL, "aborted");
        }
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
        pump(stdout, Sink::new(ctx, klog, RawStream::Stdout)),
        pump(stderr, Sink::new(ctx, klog, RawStream::Stderr))
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
    fn new(ctx: &Context, klog: bool, stream: RawStream) -> Sink {
        if klog {
            Sink::Klog(ctx.logger(), LineBuffer::default())
        } else {
            Sink::Raw(ctx.raw_logger().with_stream(stream))
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

fn forward(log: &Logger, pid: Pid, signal: ProcessSignal) {
    if let Err(e) = rustix::process::kill_process(pid, signal.to_rustix()) {
        log.warning(format_args!(
            "could not send {signal} to pid {}: {e}",
            pid.as_raw_pid()
        ));
    }
}
