//! Integration tests of the supervision runtime, by area. Ported from the Go original's
//! suite, plus the cases the original could not express (abort, stale contexts, scale).
//! Timing uses tokio's paused time; synchronisation uses `settled()` and awaited metrics
//! transitions, never sleeps.

mod backoff;
mod bad_input;
#[cfg(target_os = "linux")]
mod command;
mod control;
mod crash;
mod dynamic;
mod dynamic_model;
mod events;
mod groups;
mod grpc;
mod hardening;
mod harness;
mod health;
mod logtree_bounds;
mod logtree_scenarios;
mod logtree_stream;
mod logtree_supervised;
mod macros;
mod metrics;
mod model;
mod names;
mod node_tasks;
mod otp;
mod panics;
mod probes;
mod prometheus;
mod resilience;
mod restart;
mod scale;
mod server;
mod settled;
mod shutdown;
mod signals;
mod spans;
mod stale;
mod status_page;
mod storm;
mod support;
