//! What the log tree does with awkward input, and how it stays within its limits.

use std::io::Write;

use supervisor::logtree::{LogError, LogTree, RAW_LINE_MAX, ReadOptions};

fn raw_data(tree: &LogTree, dn: &str) -> Vec<(String, Option<usize>)> {
    tree.read(dn, ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
        .iter()
        .map(|e| {
            let r = e.raw().unwrap();
            (r.data().to_owned(), r.original_len())
        })
        .collect()
}

#[test]
fn raw_writes_split_on_newlines_keep_cr_and_empty_lines() {
    let tree = LogTree::new();
    let mut raw = tree.raw_for("proc").unwrap();
    raw.write_all(b"one\r\n\ntw").unwrap();
    raw.write_all(b"o\nthree\n").unwrap();
    let got: Vec<String> = raw_data(&tree, "proc")
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(got, ["one\r", "", "two", "three"]);
}

#[test]
fn long_raw_lines_are_cut_at_a_character_boundary_and_remember_their_length() {
    let tree = LogTree::new();
    let mut raw = tree.raw_for("proc").unwrap();
    // 1023 ASCII bytes then a 2-byte character that straddles the cap.
    let mut line = "x".repeat(RAW_LINE_MAX - 1);
    line.push('é');
    line.push_str(&"y".repeat(5000));
    for chunk in line.as_bytes().chunks(100) {
        raw.write_all(chunk).unwrap();
    }
    raw.write_all(b"\n").unwrap();
    let got = raw_data(&tree, "proc");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "x".repeat(RAW_LINE_MAX - 1));
    assert_eq!(got[0].1, Some(line.len()));
    let shown = tree
        .read("proc", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog[0]
        .to_string();
    assert!(shown.ends_with("x..."), "{shown}");
}

#[test]
fn non_utf8_bytes_are_stored_lossily() {
    let tree = LogTree::new();
    let mut raw = tree.raw_for("proc").unwrap();
    raw.write_all(b"bad \xff\xfe bytes\n").unwrap();
    raw.write_all(b"\xe2\x82").unwrap(); // half a character, then closed
    raw.close();
    let got: Vec<String> = raw_data(&tree, "proc")
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(got, ["bad \u{fffd}\u{fffd} bytes", "\u{fffd}"]);
}

#[test]
fn a_megabyte_message_is_cut_and_remembers_its_length() {
    let tree = LogTree::builder().max_message_bytes(1000).build().unwrap();
    let log = tree.leveled_for("main").unwrap();
    let huge = "z".repeat(1 << 20);
    log.info(&huge);
    let entry = &tree
        .read("main", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog[0];
    let l = entry.leveled().unwrap();
    assert_eq!(l.message().len(), 1000);
    assert_eq!(l.original_len(), Some(1 << 20));
    assert!(entry.to_string().ends_with("z..."));
}

#[test]
fn memory_stays_bounded_while_writing_without_pause() {
    let budget = 2 << 20;
    let tree = LogTree::builder().global_bytes(budget).build().unwrap();
    let logs: Vec<_> = (0..50)
        .map(|i| tree.leveled_for(&format!("root.n{i}")).unwrap())
        .collect();
    let mut peak = 0;
    for round in 0..40_000 {
        logs[round % logs.len()].info(format_args!("line {round} {}", "p".repeat(round % 300)));
        peak = peak.max(tree.usage().bytes);
    }
    let usage = tree.usage();
    assert!(peak <= budget, "peak {peak} > budget {budget}");
    assert!(
        usage.bytes > budget / 2,
        "the budget is used, not wasted: {usage:?}"
    );
    // The newest entries survive; the oldest went first.
    let newest = tree
        .read("", ReadOptions::new().backlog(1).with_children())
        .unwrap()
        .backlog;
    assert!(
        newest[0]
            .leveled()
            .unwrap()
            .message()
            .starts_with("line 39999 ")
    );
}

#[test]
fn dns_are_validated_on_write_and_read() {
    let tree = LogTree::new();
    let long = "x".repeat(65);
    let huge = "y".repeat(1 << 20);
    for bad in [
        "", ".", "a..b", "a.", ".a", "A", "a-b", "a b", "é", "a\nb", &long, &huge,
    ] {
        let err = tree.leveled_for(bad).unwrap_err();
        assert_eq!(err, LogError::InvalidDn { dn: bad.to_owned() });
        assert!(err.to_string().len() < 300, "shortened: {err}");
        assert!(tree.raw_for(bad).is_err());
        assert!(tree.set_verbosity(bad, 1).is_err());
        if !bad.is_empty() {
            assert!(tree.read(bad, ReadOptions::new().backlog_all()).is_err());
        }
    }
    assert!(tree.leveled_for("a.b").is_ok());
    assert!(tree.leveled_for(&"z".repeat(64)).is_ok());
    // The empty DN is the whole tree: readable, not writable.
    assert!(tree.read("", ReadOptions::new().backlog_all()).is_ok());
    assert!(
        LogError::InvalidDn { dn: String::new() }
            .to_string()
            .contains("root of the log tree")
    );
}

#[test]
fn injected_entries_are_sanitised() {
    use supervisor::logtree::{External, Severity};
    let tree = LogTree::new();
    let log = tree.leveled_for("ext").unwrap();
    let before = std::time::SystemTime::now();
    log.inject(External {
        severity: Severity::Warning,
        timestamp: None,
        file: None,
        line: 0,
        message: "from outside\n".into(),
    });
    log.inject(External {
        severity: Severity::Info,
        timestamp: Some(std::time::UNIX_EPOCH),
        file: Some("/abs/path/to/main.go".into()),
        line: 7,
        message: "old".into(),
    });
    let entries = tree
        .read("ext", ReadOptions::new().backlog_all())
        .unwrap()
        .backlog;
    let first = entries[0].leveled().unwrap();
    assert_eq!(first.file(), "unknown");
    assert!(first.timestamp() >= before);
    assert_eq!(first.message(), "from outside");
    let second = entries[1].leveled().unwrap();
    assert_eq!((second.file(), second.line()), ("main.go", 7));
    assert_eq!(second.prefix(), "I0101 00:00:00.000000 main.go:7] ");
}

/// Per-DN retention and the global budget together, over DNs written at uneven rates. First
/// short messages, which only per-DN retention evicts (leaving stale records in the
/// journal's global order, compacted many times over), then long ones, which the budget
/// evicts too: what is kept is always exactly the newest of what per-DN retention kept, down
/// to where the budget cut.
#[test]
fn per_dn_retention_and_the_global_budget_evict_together_oldest_first() {
    let budget = 16 << 10;
    let tree = LogTree::builder()
        .per_dn_entries(PER_DN)
        .global_bytes(budget)
        .build()
        .unwrap();
    // `quiet` is written rarely: its entries outlive many compactions, and are the first the
    // budget must take once it cuts.
    let logs: Vec<_> = ["a", "b.c", "d", "e.f.g", "quiet"]
        .iter()
        .map(|dn| tree.leveled_for(dn).unwrap())
        .collect();
    let mut written: Vec<Vec<u64>> = vec![Vec::new(); logs.len()];
    for i in 0..50_000u64 {
        let d = if i % 500 == 0 {
            4
        } else {
            [0, 0, 0, 1, 1, 2, 3][(i % 7) as usize]
        };
        let padding = if i < 40_000 { i % 50 } else { 300 };
        logs[d].info(format_args!("{i} {}", "x".repeat(padding as usize)));
        written[d].push(i);
        assert!(tree.usage().bytes <= budget);
        if i == 39_999 {
            let (kept, survivors) = kept_against_survivors(&tree, &written);
            assert_eq!(kept, survivors, "short messages fit the budget");
        } else if i > 41_000 && i % 7 == 0 {
            let (kept, survivors) = kept_against_survivors(&tree, &written);
            assert!(
                kept < survivors,
                "the budget cuts into what per-DN retention kept"
            );
        }
    }
}

const PER_DN: usize = 16;

/// Checks that the tree keeps a newest part of what per-DN retention alone would keep of
/// `written` (each DN's message numbers, in order), and returns how many entries it keeps
/// and how many per-DN retention would.
fn kept_against_survivors(tree: &LogTree, written: &[Vec<u64>]) -> (usize, usize) {
    use std::collections::BTreeSet;
    let survivors: BTreeSet<u64> = written
        .iter()
        .flat_map(|w| w.iter().rev().take(PER_DN).copied())
        .collect();
    let kept: BTreeSet<u64> = tree
        .read("", ReadOptions::new().backlog_all().with_children())
        .unwrap()
        .backlog
        .iter()
        .map(|e| e.message().split(' ').next().unwrap().parse().unwrap())
        .collect();
    let oldest = *kept.first().expect("something is kept");
    let newest_survivors: BTreeSet<u64> = survivors.range(oldest..).copied().collect();
    assert_eq!(kept, newest_survivors);
    (kept.len(), survivors.len())
}

/// Drains a stream that has stopped receiving, counting the entries it held and the entries
/// it reported missed.
fn drain(stream: &mut supervisor::logtree::LogStream) -> (u64, u64) {
    use supervisor::logtree::Streamed;
    let (mut entries, mut missed) = (0, 0);
    while let Some(item) = stream.try_next() {
        match item {
            Streamed::Entry(_) => entries += 1,
            Streamed::Missed(n) => missed += n,
        }
    }
    (entries, missed)
}

#[test]
fn an_idle_stream_holds_no_more_than_the_trees_budget_and_says_what_it_missed() {
    const BUDGET: usize = 1 << 20;
    let tree = LogTree::builder().global_bytes(BUDGET).build().unwrap();
    let mut reader = tree.read("big", ReadOptions::new().stream()).unwrap();
    let logger = tree.leveled_for("big").unwrap();
    let message = "x".repeat(16 << 10);
    for _ in 0..500 {
        logger.info(&message);
    }
    // 500 entries of 16 KiB would be 8 MiB: the stream may hold no more than the budget.
    let usage = tree.usage();
    assert!(usage.bytes <= BUDGET, "{usage:?}");
    assert!(usage.stream_bytes <= BUDGET, "{usage:?}");
    assert!(
        usage.stream_bytes > BUDGET / 2,
        "the stream keeps what fits: {usage:?}"
    );
    let (entries, missed) = drain(reader.stream.as_mut().unwrap());
    assert_eq!(entries + missed, 500, "every entry is delivered or counted");
    assert!(missed > 0);
    assert_eq!(
        tree.usage().stream_bytes,
        0,
        "read entries are no longer counted"
    );
    drop(reader);
}

#[test]
fn a_stream_is_bounded_by_its_own_bytes_too() {
    let tree = LogTree::new();
    let mut small = tree
        .read(
            "big",
            ReadOptions::new().stream().stream_buffer_bytes(100_000),
        )
        .unwrap();
    let logger = tree.leveled_for("big").unwrap();
    let message = "y".repeat(10_000);
    for _ in 0..100 {
        logger.info(&message);
    }
    let usage = tree.usage();
    assert!(usage.stream_bytes <= 100_000, "{usage:?}");
    let (entries, missed) = drain(small.stream.as_mut().unwrap());
    assert_eq!(
        entries, 9,
        "nine entries of about 10 KiB fit in 100,000 bytes"
    );
    assert_eq!(missed, 91);
    // A dropped stream gives back what it held.
    logger.info(&message);
    assert!(tree.usage().stream_bytes > 0);
    drop(small);
    assert_eq!(tree.usage().stream_bytes, 0);
}
