//! systemd's notify protocol (sd_notify(3), DESIGN §16): `READY=1` once the tree is first
//! ready, `STATUS=` on changes, `WATCHDOG=1` every `WATCHDOG_USEC/2` while no critical
//! watchdog has expired, `STOPPING=1` when the tree begins to stop.
//!
//! Each message is one datagram to `$NOTIFY_SOCKET`, sent with std's `UnixDatagram`: a path,
//! or `@name` for an abstract socket (Linux). The popular `sd-notify` crate cannot reach
//! abstract sockets and needs `libc`; the protocol is one datagram, which std sends safely.
//! The environment is read once, when the supervisor starts, and left as it is (removing
//! variables is `unsafe` since Rust 2024, as other threads may read them): the children of
//! [`run_command`](crate::run_command) are started without them instead.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::shared::Shared;

/// What systemd told the process through its environment.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotifyEnv {
    pub(crate) socket: Option<OsString>,
    pub(crate) watchdog_usec: Option<OsString>,
    pub(crate) watchdog_pid: Option<OsString>,
}

impl NotifyEnv {
    pub(crate) fn from_process() -> NotifyEnv {
        NotifyEnv {
            socket: std::env::var_os("NOTIFY_SOCKET"),
            watchdog_usec: std::env::var_os("WATCHDOG_USEC"),
            watchdog_pid: std::env::var_os("WATCHDOG_PID"),
        }
    }
}

/// Where and how often to notify, once the environment is read.
struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, if the watchdog is this
    /// process's.
    ping: Option<Duration>,
    shared: Arc<Shared>,
}

/// Reads `env` and, if it names a notify socket, spawns the task that notifies systemd
/// for the tree of `shared`. Whatever in `env` cannot be used is logged at `supervisor`,
/// naming the variable and the rule, and that part is left out; the tree runs on.
pub(crate) fn start(shared: &Arc<Shared>, env: NotifyEnv) {
    let Some(socket) = env.socket.filter(|s| !s.is_empty()) else {
        return;
    };
    let to = match address(&socket) {
        Ok(to) => to,
        Err(why) => {
            shared.warn(&format!(
                "not notifying systemd: NOTIFY_SOCKET {socket:?} {why}"
            ));
            return;
        }
    };
    let socket = match UnixDatagram::unbound().and_then(|s| {
        s.set_nonblocking(true)?;
        Ok(s)
    }) {
        Ok(socket) => socket,
        Err(e) => {
            shared.warn(&format!(
                "not notifying systemd: cannot make a datagram socket: {e}"
            ));
            return;
        }
    };
    let ping = match watchdog(&env.watchdog_usec, &env.watchdog_pid) {
        Ok(ping) => ping,
        Err(why) => {
            shared.warn(&format!("not sending systemd watchdog pings: {why}"));
            None
        }
    };
    let notifier = Notifier {
        socket,
        to,
        ping,
        shared: shared.clone(),
    };
    let finished = shared.watch_finished();
    shared.spawn_counted(notifier.run(finished));
}

/// The address `$NOTIFY_SOCKET` names: an absolute path, or `@name` for an abstract socket.
fn address(socket: &OsString) -> Result<SocketAddr, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket).map_err(|e| format!("is not usable: {e}")),
        Some(b'@') => abstract_address(&bytes[1..]),
        _ => Err("is neither an absolute path nor `@` and an abstract socket's name".to_owned()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> Result<SocketAddr, String> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).map_err(|e| format!("is not usable: {e}"))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> Result<SocketAddr, String> {
    Err("names an abstract socket, which only Linux has".to_owned())
}

/// How often to ping systemd's watchdog, from `WATCHDOG_USEC` and `WATCHDOG_PID`: never
/// without the first, nor when the second names another process (the watchdog is
/// theirs, as `sd_watchdog_enabled` says).
fn watchdog(usec: &Option<OsString>, pid: &Option<OsString>) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let period = usec
        .to_str()
        .and_then(|u| u.parse::<u64>().ok())
        .filter(|&u| u > 0)
        .ok_or_else(|| {
            format!("WATCHDOG_USEC {usec:?} is not a number of microseconds above zero")
        })?;
    if let Some(pid) = pid {
        let pid: u32 = pid
            .to_str()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("WATCHDOG_PID {pid:?} is not a process ID"))?;
        if pid != std::process::id() {
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(period) / 2))
}

/// The next tick of `pings`; never without any.
async fn tick(pings: &mut Option<tokio::time::Interval>) {
    match pings {
        Some(pings) => drop(pings.tick().await),
        None => std::future::pending().await,
    }
}

impl Notifier {
    async fn run(self, finished: tokio_util::sync::CancellationToken) {
        let mut changes = self.shared.watch_health();
        let mut pings = self.ping.map(|every| {
            let mut pings = tokio::time::interval_at(Instant::now() + every, every);
            // A runtime that was blocked sends one ping when it runs again, not a burst.
            pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
            pings
        });
        let token = self.shared.token.clone();
        let mut ready_sent = false;
        let mut status = String::new();
        let mut withheld = false;
        loop {
            let (ready, summary) = {
                let tree = self.shared.tree();
                (tree.is_ready(), tree.summary())
            };
            if ready && !ready_sent {
                ready_sent = true;
                self.send("READY=1");
            }
            let summary = summary.to_string();
            if summary != status {
                self.send(&format!("STATUS={summary}"));
                status = summary;
            }
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                () = finished.cancelled() => break,
                _ = changes.changed() => {}
                () = tick(&mut pings) => {
                    let expired = self.shared.tree().expired_critical();
                    match expired {
                        None => {
                            withheld = false;
                            self.send("WATCHDOG=1");
                        }
                        Some((dn, period)) if !withheld => {
                            withheld = true;
                            self.shared.warn(&format!(
                                "withholding systemd watchdog pings: the watchdog of critical \
                                 node {dn} ({period:?}) has expired"
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        self.send("STOPPING=1");
    }

    /// Sends one datagram; a failure is logged, and the tree runs on.
    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.to) {
            let why = match e.kind() {
                io::ErrorKind::WouldBlock => "systemd's socket is full".to_owned(),
                _ => e.to_string(),
            };
            self.shared
                .warn(&format!("cannot notify systemd of {message:?}: {why}"));
        }
    }
}

/// The protocol against a real datagram socket the test binds, under paused time: the
/// supervisor reads its variables from [`NotifyEnv`] here, as tests cannot set the
/// environment of a process whose other threads read it (the system tests do it in a
/// child process).
#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::NotifyEnv;
    use crate::{Backoff, Context, Signal, Spec, Supervisor};

    async fn serve(ctx: Context) -> crate::Result {
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    }

    /// A root that starts its children with `setup`, then serves.
    fn parent(
        setup: impl Fn(&Context) -> Result<(), crate::RunError> + Send + Sync + 'static,
    ) -> impl crate::Runnable {
        let setup = std::sync::Arc::new(setup);
        move |ctx: Context| {
            let setup = setup.clone();
            async move {
                setup(&ctx)?;
                serve(ctx).await
            }
        }
    }

    /// A socket bound where `NOTIFY_SOCKET` says, as systemd's.
    struct Systemd {
        socket: tokio::net::UnixDatagram,
        path: Option<PathBuf>,
        name: OsString,
    }

    impl Systemd {
        fn at_path(test: &str) -> Systemd {
            let path = std::env::temp_dir().join(format!(
                "supervisor-notify-{}-{test}.sock",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            let socket = UnixDatagram::bind(&path).unwrap();
            socket.set_nonblocking(true).unwrap();
            Systemd {
                socket: tokio::net::UnixDatagram::from_std(socket).unwrap(),
                name: path.clone().into_os_string(),
                path: Some(path),
            }
        }

        fn abstract_named(test: &str) -> Systemd {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("supervisor-notify-{}-{test}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
            let socket = UnixDatagram::bind_addr(&addr).unwrap();
            socket.set_nonblocking(true).unwrap();
            Systemd {
                socket: tokio::net::UnixDatagram::from_std(socket).unwrap(),
                path: None,
                name: format!("@{name}").into(),
            }
        }

        fn env(&self) -> NotifyEnv {
            NotifyEnv {
                socket: Some(self.name.clone()),
                ..NotifyEnv::default()
            }
        }

        /// Every datagram received so far, in order.
        fn received(&self) -> Vec<String> {
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.socket.try_recv(&mut buf) {
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            received
        }

        /// The next datagram, waited for.
        async fn next(&self) -> String {
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    }

    impl Drop for Systemd {
        fn drop(&mut self) {
            if let Some(path) = &self.path {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// A root with a child that becomes Healthy when told, through the returned sender.
    fn gated_tree() -> (impl crate::Runnable, tokio::sync::mpsc::UnboundedSender<()>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let root = parent(move |ctx| {
            let rx = rx.clone();
            ctx.run("db", move |ctx: Context| {
                let rx = rx.clone();
                async move {
                    rx.lock().await.recv().await;
                    serve(ctx).await
                }
            })
        });
        (root, tx)
    }

    async fn ready_then_stopping(systemd: &Systemd) {
        let (root, db_ready) = gated_tree();
        let sup = Supervisor::builder().systemd_env(systemd.env()).start(root);
        sup.settled().await;
        assert_eq!(
            systemd.received(),
            ["STATUS=1/2 ready; root.db starting"],
            "no READY=1 before the last child is Healthy"
        );
        db_ready.send(()).unwrap();
        sup.settled().await;
        assert_eq!(systemd.received(), ["READY=1", "STATUS=2/2 ready"]);
        sup.cancel();
        sup.clone().wait().await;
        assert_eq!(systemd.received(), ["STOPPING=1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_once_the_last_child_is_healthy_and_stopping_on_cancel() {
        ready_then_stopping(&Systemd::at_path("ready")).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_abstract_socket_is_reached_too() {
        ready_then_stopping(&Systemd::abstract_named("abstract")).await;
    }

    #[tokio::test(start_paused = true)]
    async fn status_follows_a_restart_and_ready_is_sent_once() {
        let systemd = Systemd::at_path("restart");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Context>();
        let sup = Supervisor::builder()
            .systemd_env(systemd.env())
            .backoff(Backoff::constant(Duration::from_secs(3)))
            .start(parent(move |ctx| {
                let tx = tx.clone();
                ctx.run("flaky", move |ctx: Context| {
                    let _ = tx.send(ctx.clone());
                    serve(ctx)
                })
            }));
        sup.ready().await;
        sup.settled().await;
        let flaky = rx.recv().await.unwrap();
        let _ = systemd.received();
        // It cancels itself: restarted after its backoff of 3 s.
        flaky.cancellation_token().cancel();
        sup.settled().await;
        let received = systemd.received();
        assert_eq!(
            received.first().map(String::as_str),
            Some("STATUS=1/2 ready; root.flaky restarting in 3.0s")
        );
        assert_eq!(
            received.last().map(String::as_str),
            Some("STATUS=2/2 ready")
        );
        assert!(!received.contains(&"READY=1".to_owned()), "{received:?}");
        sup.cancel();
        sup.wait().await;
    }

    fn watched(systemd: &Systemd, usec: &str, pid: Option<String>) -> NotifyEnv {
        NotifyEnv {
            watchdog_usec: Some(usec.into()),
            watchdog_pid: pid.map(Into::into),
            ..systemd.env()
        }
    }

    fn pings(received: &[String]) -> usize {
        received.iter().filter(|m| *m == "WATCHDOG=1").count()
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_every_half_of_watchdog_usec() {
        let systemd = Systemd::at_path("cadence");
        let pid = Some(std::process::id().to_string());
        let sup = Supervisor::builder()
            .systemd_env(watched(&systemd, "2000000", pid))
            .start(serve);
        sup.ready().await;
        sup.settled().await;
        assert_eq!(pings(&systemd.received()), 0, "the first after a second");
        for second in 1..=5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            sup.settled().await;
            assert_eq!(pings(&systemd.received()), 1, "at {second} s");
        }
        sup.cancel();
        sup.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_watchdog_pings_when_watchdog_pid_is_another_process() {
        let systemd = Systemd::at_path("pid");
        let sup = Supervisor::builder()
            .systemd_env(watched(&systemd, "2000000", Some("1".into())))
            .start(serve);
        sup.ready().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        sup.settled().await;
        let received = systemd.received();
        assert_eq!(pings(&received), 0, "{received:?}");
        assert!(received.contains(&"READY=1".to_owned()));
        sup.cancel();
        sup.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_watchdog_pings_while_a_critical_watchdog_has_expired() {
        let systemd = Systemd::at_path("critical");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let sup = Supervisor::builder()
            .systemd_env(watched(&systemd, "2000000", None))
            .backoff(Backoff::constant(Duration::from_secs(10)))
            .start(parent(move |ctx| {
                let rx = rx.clone();
                let engine = move |ctx: Context| {
                    let rx = rx.clone();
                    async move {
                        ctx.signal(Signal::Healthy);
                        // Fed while told to, then wedged.
                        while rx.lock().await.recv().await.is_some() {
                            ctx.heartbeat();
                        }
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                };
                let spec = Spec::new().watchdog(Duration::from_secs(3)).critical();
                ctx.run_with("engine", engine, spec)
            }));
        sup.ready().await;
        sup.settled().await;
        let _ = systemd.received();
        // Fed every second for four seconds: a ping every second.
        for _ in 0..4 {
            tx.send(()).unwrap();
            sup.settled().await;
            tokio::time::advance(Duration::from_secs(1)).await;
            sup.settled().await;
        }
        assert_eq!(pings(&systemd.received()), 4);
        // Wedged from its last heartbeat (at 3 s): it starves at 6 s, and fails. The ping
        // at 5 s goes out; the one at 6 s finds the watchdog expired.
        tokio::time::advance(Duration::from_secs(1)).await;
        sup.settled().await;
        assert_eq!(pings(&systemd.received()), 1, "at 5 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        let failed = "STATUS=1/2 ready; root.engine restarting in 10.0s";
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some(failed) {
            seen.push(systemd.next().await);
        }
        assert_eq!(pings(&seen), 0, "at 6 s: {seen:?}");
        // Withheld while it is down (settling runs its backoff out, second by second of
        // pings), until it is Healthy again.
        sup.settled().await;
        assert_eq!(sup.states()["root.engine"], crate::NodeState::Healthy);
        let down = systemd.received();
        let back = down.iter().position(|m| m == "STATUS=2/2 ready");
        let back = back.unwrap_or_else(|| panic!("never healthy again: {down:?}"));
        assert_eq!(pings(&down[..back]), 0, "{down:?}");
        tokio::time::advance(Duration::from_secs(1)).await;
        sup.settled().await;
        assert_eq!(pings(&systemd.received()), 1, "the pings resume");
        drop(tx);
        sup.cancel();
        sup.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_critical_node_that_stops_feeding_is_found_out_before_its_task_runs() {
        // What a runnable blocking its thread looks like to the pings: its task cannot
        // run to fail it, but its heartbeats have stopped.
        let sup = Supervisor::new(parent(|ctx| {
            let spec = Spec::new().watchdog(Duration::from_secs(2)).critical();
            ctx.run_with("engine", serve, spec)
        }));
        sup.ready().await;
        sup.settled().await;
        assert!(sup.shared().tree().expired_critical().is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        // Not yielded: the engine's task has not run since.
        let expired = sup.shared().tree().expired_critical();
        assert_eq!(
            expired.map(|(dn, period)| (dn.to_string(), period)),
            Some(("root.engine".to_owned(), Duration::from_secs(2)))
        );
        sup.cancel();
        sup.wait().await;
    }

    #[test]
    fn unusable_variables_are_refused_with_the_rule() {
        let bad = |socket: &str| super::address(&socket.into()).unwrap_err();
        assert_eq!(
            bad("relative/path"),
            "is neither an absolute path nor `@` and an abstract socket's name"
        );
        let usec = |u: &str| super::watchdog(&Some(u.into()), &None);
        assert_eq!(usec("4000000"), Ok(Some(Duration::from_secs(2))));
        assert!(usec("0").unwrap_err().contains("above zero"));
        assert!(usec("soon").unwrap_err().contains("WATCHDOG_USEC \"soon\""));
        let pid = super::watchdog(&Some("1000".into()), &Some("me".into()));
        assert!(pid.unwrap_err().contains("WATCHDOG_PID \"me\""));
        assert_eq!(super::watchdog(&None, &Some("1".into())), Ok(None));
    }
}
