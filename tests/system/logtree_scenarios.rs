//! The acceptance scenarios of LOGTREE.md, ported from the original's tests.

use std::io::Write;

use supervisor::logtree::{LogEntry, LogError, LogTree, ReadOptions, Severity};

fn messages(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.message().to_owned()).collect()
}

fn all(tree: &LogTree, dn: &str) -> Vec<LogEntry> {
    tree.read(dn, ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
}

fn subtree(tree: &LogTree, dn: &str) -> Vec<LogEntry> {
    tree.read(dn, ReadOptions::new().backlog_all().with_children())
        .unwrap()
        .backlog
}

#[test]
fn retention_keeps_the_newest_8192_of_a_dn() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    for i in 0..9000 {
        log.info(format_args!("test {i}"));
    }
    let entries = all(&tree, "main");
    assert_eq!(entries.len(), 8192);
    let expected: Vec<String> = (808..9000).map(|i| format!("test {i}")).collect();
    assert_eq!(messages(&entries), expected);
}

#[test]
fn a_chatty_dn_never_evicts_a_quiet_one() {
    let tree = LogTree::new();
    let (chatty, solemn) = (
        tree.leveled_for("chatty").unwrap(),
        tree.leveled_for("solemn").unwrap(),
    );
    for i in 0..9000 {
        chatty.info(format_args!("chatty {i}"));
        if i % 10 == 0 {
            solemn.info(format_args!("solemn {i}"));
        }
    }
    assert_eq!(all(&tree, "chatty").len(), 8192);
    assert_eq!(all(&tree, "solemn").len(), 900);
    assert_eq!(all(&tree, "unknown").len(), 0);
    assert_eq!(subtree(&tree, "").len(), 9092);
}

#[test]
fn subtree_reads_compare_components() {
    let tree = LogTree::new();
    for dn in ["a", "a.b", "a.b.c", "a.b.d", "e.f", "e.g", "ab"] {
        tree.leveled_for(dn).unwrap().info(dn);
    }
    let dns = |root: &str| -> Vec<String> {
        let mut d: Vec<String> = subtree(&tree, root)
            .iter()
            .map(|e| e.dn().to_owned())
            .collect();
        d.sort();
        d
    };
    assert_eq!(dns(""), ["a", "a.b", "a.b.c", "a.b.d", "ab", "e.f", "e.g"]);
    assert_eq!(dns("a"), ["a", "a.b", "a.b.c", "a.b.d"]);
    assert_eq!(dns("a.b"), ["a.b", "a.b.c", "a.b.d"]);
    assert_eq!(dns("e"), ["e.f", "e.g"]);
    assert_eq!(dns("a.bc"), Vec::<String>::new());
}

#[test]
fn multiline_messages_are_trimmed_and_split() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    log.info("foo\nbar");
    log.info("one\ntwo\n");
    log.info("\n\nx\n\ny\n\n");
    let entries = all(&tree, "main");
    let lines: Vec<Vec<&str>> = entries
        .iter()
        .map(|e| e.leveled().unwrap().messages().collect())
        .collect();
    assert_eq!(
        lines,
        [vec!["foo", "bar"], vec!["one", "two"], vec!["x", "", "y"]]
    );
}

#[test]
fn backlog_all_counts_and_the_unterminated_raw_line_arrives_on_close() {
    let tree = LogTree::new();
    tree.leveled_for("main").unwrap().info("main");
    tree.leveled_for("main.foo").unwrap().info("foo");
    tree.leveled_for("main.bar").unwrap().info("bar");
    tree.leveled_for("aux").unwrap().info("aux");
    let mut raw = tree.raw_for("aux.process").unwrap();
    raw.write_all(b"processing foo\nprocessing bar\nbaz")
        .unwrap();
    assert_eq!(subtree(&tree, "main").len(), 3);
    assert_eq!(subtree(&tree, "").len(), 6);
    assert_eq!(subtree(&tree, "aux").len(), 3);
    raw.close();
    assert_eq!(subtree(&tree, "aux").len(), 4);
    assert_eq!(messages(&all(&tree, "aux.process"))[2], "baz");
}

#[test]
fn an_unterminated_raw_line_is_kept_when_the_writer_is_dropped() {
    let tree = LogTree::new();
    {
        let mut raw = tree.raw_for("proc").unwrap();
        write!(raw, "no newline at the end").unwrap();
        raw.flush().unwrap();
        assert_eq!(all(&tree, "proc").len(), 0, "flush does not cut a line");
    }
    assert_eq!(messages(&all(&tree, "proc")), ["no newline at the end"]);
}

#[test]
fn backlog_n_returns_the_newest_matching_in_journal_order() {
    let tree = LogTree::new();
    let (a, b) = (
        tree.leveled_for("x.a").unwrap(),
        tree.leveled_for("x.b").unwrap(),
    );
    for i in 0..10 {
        a.info(format_args!("a{i}"));
        b.info(format_args!("b{i}"));
    }
    let entries = tree
        .read("x", ReadOptions::new().backlog(5).with_children())
        .unwrap()
        .backlog;
    assert_eq!(messages(&entries), ["b7", "a8", "b8", "a9", "b9"]);
    let seqs: Vec<u64> = entries.iter().map(LogEntry::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn verbose_entries_depend_on_the_dns_verbosity() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    log.v(10).info("quiet");
    assert!(!log.v(10).enabled());
    assert_eq!(all(&tree, "main").len(), 0);
    tree.set_verbosity("main", 10).unwrap();
    log.v(10).info("loud");
    let entries = all(&tree, "main");
    assert_eq!(messages(&entries), ["loud"]);
    assert_eq!(entries[0].leveled().unwrap().verbosity(), 10);
}

#[test]
fn metadata_is_recorded() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    log.error("i am an error");
    log.warning("i am a warning");
    log.info("i am informative");
    log.v(0).info("i am a zero-level debug");
    let entries = all(&tree, "main");
    let got: Vec<(Severity, String, String)> = entries
        .iter()
        .map(|e| {
            let l = e.leveled().unwrap();
            (l.severity(), l.message().to_owned(), l.file().to_owned())
        })
        .collect();
    let file = "logtree_scenarios.rs".to_owned();
    assert_eq!(
        got,
        [
            (Severity::Error, "i am an error".into(), file.clone()),
            (Severity::Warning, "i am a warning".into(), file.clone()),
            (Severity::Info, "i am informative".into(), file.clone()),
            (Severity::Info, "i am a zero-level debug".into(), file),
        ]
    );
    assert!(entries.iter().all(|e| e.leveled().unwrap().line() > 0));
}

#[test]
fn minimum_severity_filters_leveled_entries_and_lets_raw_through() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    log.error("i am an error");
    log.warning("i am a warning");
    log.info("i am informative");
    log.v(0).info("i am a zero-level debug");
    let warn = ReadOptions::new()
        .backlog_all()
        .min_severity(Severity::Warning);
    let entries = tree.read("main", warn.clone()).unwrap().backlog;
    assert_eq!(messages(&entries), ["i am an error", "i am a warning"]);

    // The original dropped every raw entry under a severity filter.
    tree.raw_for("main")
        .unwrap()
        .write_all(b"raw line\n")
        .unwrap();
    let entries = tree.read("main", warn.clone()).unwrap().backlog;
    assert_eq!(
        messages(&entries),
        ["i am an error", "i am a warning", "raw line"]
    );
    let entries = tree.read("main", warn.only_leveled()).unwrap().backlog;
    assert_eq!(entries.len(), 2);
}

#[test]
fn kinds_can_be_selected_but_not_both_excluded() {
    let tree = LogTree::new();
    tree.leveled_for("main").unwrap().info("leveled");
    tree.raw_for("main").unwrap().write_all(b"raw\n").unwrap();
    let raw = tree
        .read("main", ReadOptions::new().backlog_all().only_raw())
        .unwrap();
    assert_eq!(messages(&raw.backlog), ["raw"]);
    let leveled = tree
        .read("main", ReadOptions::new().backlog_all().only_leveled())
        .unwrap();
    assert_eq!(messages(&leveled.backlog), ["leveled"]);
    let err = tree
        .read("main", ReadOptions::new().only_raw().only_leveled())
        .unwrap_err();
    assert_eq!(err, LogError::ConflictingKinds);
}

#[test]
fn a_sub_logger_logs_below_its_runnable() {
    let tree = LogTree::new();
    tree.leveled_for("root.foo.dut")
        .unwrap()
        .info("hello from foo.dut");
    assert_eq!(
        messages(&all(&tree, "root.foo.dut")),
        ["hello from foo.dut"]
    );
}
