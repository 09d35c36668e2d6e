//! Bad input at every public entry point that takes a name, a DN, a log line, a klog line or
//! a configuration value: each gets a clear `Err` or is stored safely, never a panic, never
//! a lost neighbour entry. Property tests, bounded for CI; `fuzz/` has the unbounded kind.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use supervisor::logtree::{LogTree, RAW_LINE_MAX, ReadOptions, klog};
use supervisor::{Backoff, Context, RunError, Signal, Supervisor};

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Names: mostly near the rule (to hit the boundaries), some anything at all.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{0,66}",
        "[a-zA-Z0-9_.\\- ]{0,70}",
        any::<String>(),
        Just("x".repeat(64)),
        Just("x".repeat(65)),
        Just("y".repeat(1 << 20)),
        Just("\u{0}\n\t\r".to_owned()),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn child_and_sub_logger_names_are_checked_exactly(names in prop::collection::vec(name(), 1..6)) {
        let results = runtime().block_on(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let tx = std::sync::Mutex::new(Some(tx));
            let names2 = names.clone();
            let sup = Supervisor::new(move |ctx: Context| {
                let names = names2.clone();
                let tx = tx.lock().unwrap().take();
                async move {
                    let mut out = Vec::new();
                    for (i, n) in names.iter().enumerate() {
                        let r = if i % 2 == 0 {
                            ctx.run(n, |ctx: Context| async move {
                                ctx.signal(Signal::Healthy);
                                ctx.cancelled().await;
                                Ok(())
                            })
                        } else {
                            ctx.sub_logger(n).map(|_| ())
                        };
                        out.push(r);
                    }
                    if let Some(tx) = tx {
                        let _ = tx.send(out);
                    }
                    ctx.signal(Signal::Healthy);
                    ctx.cancelled().await;
                    Ok(())
                }
            });
            let results = rx.await.unwrap();
            sup.cancel();
            sup.wait().await;
            (names, results)
        });
        let (names, results) = results;
        let mut seen = std::collections::HashMap::new();
        for (i, (n, r)) in names.iter().zip(&results).enumerate() {
            let is_child = i % 2 == 0;
            match r {
                Ok(()) => {
                    prop_assert!(valid_name(n));
                    let first = seen.insert(n.clone(), is_child);
                    // A sub-logger may be asked for twice; a child never, nor across kinds.
                    prop_assert!(first.is_none() || (first == Some(false) && !is_child));
                }
                Err(RunError::InvalidName { name, .. }) => {
                    prop_assert!(!valid_name(n));
                    prop_assert_eq!(name, n);
                    prop_assert!(r.as_ref().unwrap_err().to_string().len() < 400);
                }
                Err(RunError::NameTaken { .. }) => prop_assert!(seen.contains_key(n)),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn dns_are_accepted_exactly_when_every_component_is_valid(parts in prop::collection::vec(name(), 0..4)) {
        let dn = parts.join(".");
        let valid = !dn.is_empty() && dn.split('.').all(valid_name);
        let tree = LogTree::new();
        tree.leveled_for("neighbour").unwrap().info("keep me");
        prop_assert_eq!(tree.leveled_for(&dn).is_ok(), valid);
        prop_assert_eq!(tree.raw_for(&dn).is_ok(), valid);
        prop_assert_eq!(tree.set_verbosity(&dn, 3).is_ok(), valid);
        prop_assert_eq!(tree.read(&dn, ReadOptions::new().backlog_all()).is_ok(), valid || dn.is_empty());
        if let Ok(log) = tree.leveled_for(&dn) {
            log.error(&dn);
        }
        let kept = tree.read("neighbour", ReadOptions::new().backlog_all()).unwrap().backlog;
        prop_assert_eq!(kept.len(), 1, "the neighbour's entry is never lost");
    }

    #[test]
    fn any_line_is_safe_for_the_klog_parser(line in prop_oneof![any::<String>(), "[IWEFD][0-9]{4} [0-9:.]{8,20} [0-9]{1,5} [a-z.]{1,10}:[0-9]{1,5}\\] .{0,20}"]) {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        if let Some(entry) = klog::parse(&line, now) {
            prop_assert!(!entry.message.is_empty());
            prop_assert!(entry.file.as_deref().is_some_and(|f| !f.is_empty()));
            let at = entry.timestamp.unwrap();
            prop_assert!(at <= now + Duration::from_secs(3600));
        }
    }

    #[test]
    fn klog_fields_in_range_parse_and_out_of_range_do_not(
        month in 0u32..14, day in 0u32..33, hour in 0u32..26, minute in 0u32..61, second in 0u32..61,
    ) {
        // `now` is the end of the year, so that every valid date is in the past.
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_199); // 2023-12-31 23:59:59
        let line = format!("I{month:02}{day:02} {hour:02}:{minute:02}:{second:02}.5 1 a.go:1] x");
        let days_in = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in[month as usize]
            && hour < 24 && minute < 60 && second < 60;
        prop_assert_eq!(klog::parse(&line, now).is_some(), valid, "{}", line);
    }

    #[test]
    fn raw_writes_keep_every_line_whatever_the_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 0..8)) {
        let tree = LogTree::new();
        {
            let mut raw = tree.raw_for("proc").unwrap();
            for c in &chunks {
                raw.write_all(c).unwrap();
            }
        }
        let all: Vec<u8> = chunks.concat();
        let mut expected: Vec<&[u8]> = all.split(|&b| b == b'\n').collect();
        if all.last() == Some(&b'\n') || all.is_empty() {
            expected.pop();
        }
        let got = tree.read("proc", ReadOptions::new().backlog_all()).unwrap().backlog;
        prop_assert_eq!(got.len(), expected.len());
        for (entry, line) in got.iter().zip(expected) {
            let raw = entry.raw().unwrap();
            let lossy = String::from_utf8_lossy(line);
            prop_assert!(raw.data().len() <= RAW_LINE_MAX);
            prop_assert!(lossy.starts_with(raw.data()));
            prop_assert_eq!(raw.original_len().is_some(), lossy.len() > RAW_LINE_MAX || line.len() > RAW_LINE_MAX);
        }
    }

    #[test]
    fn backoff_settings_are_refused_with_the_rule_or_used_safely(m in any::<f64>(), r in any::<f64>(), secs in any::<u64>()) {
        let multiplier = Backoff::default().multiplier(m);
        prop_assert_eq!(multiplier.is_ok(), m.is_finite() && m >= 1.0);
        if let Err(e) = multiplier {
            prop_assert!(e.to_string().contains("backoff multiplier"));
        }
        prop_assert_eq!(Backoff::default().randomization(r).is_ok(), (0.0..=1.0).contains(&r));
        // Any duration is a legal setting.
        let _ = Backoff::default().initial(Duration::from_secs(secs)).max(Duration::from_secs(secs));
    }
}

#[test]
fn zero_limits_are_refused_and_a_megabyte_klog_line_is_just_not_klog() {
    assert!(LogTree::builder().per_dn_entries(0).build().is_err());
    assert!(LogTree::builder().max_message_bytes(0).build().is_err());
    let huge = format!("E0101 00:00:00 1 a.go:1] {}", "z".repeat(1 << 20));
    let parsed = klog::parse(&huge, SystemTime::now());
    assert!(parsed.is_some_and(|e| e.message.len() == 1 << 20));
    assert!(klog::parse(&"\u{fffd}".repeat(1 << 18), SystemTime::now()).is_none());
}
