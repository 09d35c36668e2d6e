//! Live streams: exactly once, in order, filtered, bounded, unsubscribed on drop.

use std::io::Write;

use supervisor::logtree::{LogEntry, LogStream, LogTree, ReadOptions, Severity, Streamed};

fn entry(item: Option<Streamed>) -> LogEntry {
    match item {
        Some(Streamed::Entry(e)) => e,
        other => panic!("expected an entry, got {other:?}"),
    }
}

fn text(e: &LogEntry) -> String {
    e.message().to_owned()
}

#[tokio::test]
async fn the_stream_continues_where_the_backlog_ends() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    for i in 0..5 {
        log.info(format_args!("old {i}"));
    }
    let mut reader = tree
        .read("main", ReadOptions::new().backlog(2).stream())
        .unwrap();
    assert_eq!(
        reader.backlog.iter().map(text).collect::<Vec<_>>(),
        ["old 3", "old 4"]
    );
    let stream = reader.stream.as_mut().unwrap();
    assert!(stream.try_next().is_none());
    log.info("new leveled");
    tree.raw_for("main")
        .unwrap()
        .write_all(b"new raw\n")
        .unwrap();
    assert_eq!(text(&entry(stream.next().await)), "new leveled");
    assert_eq!(text(&entry(stream.next().await)), "new raw");
}

#[tokio::test]
async fn the_stream_applies_the_same_filters_as_the_backlog() {
    let tree = LogTree::new();
    let mut exact = tree.read("a", ReadOptions::new().stream()).unwrap();
    let mut warnings = tree
        .read(
            "a",
            ReadOptions::new()
                .stream()
                .with_children()
                .min_severity(Severity::Warning),
        )
        .unwrap();
    let mut raw_only = tree
        .read("", ReadOptions::new().stream().with_children().only_raw())
        .unwrap();
    tree.leveled_for("a.b").unwrap().error("below a");
    tree.leveled_for("ab").unwrap().error("not below a");
    tree.leveled_for("a").unwrap().info("at a");
    tree.raw_for("a").unwrap().write_all(b"raw at a\n").unwrap();
    let drain = |s: &mut LogStream| {
        let mut out = Vec::new();
        while let Some(item) = s.try_next() {
            out.push(text(&entry(Some(item))));
        }
        out
    };
    assert_eq!(drain(exact.stream.as_mut().unwrap()), ["at a", "raw at a"]);
    assert_eq!(
        drain(warnings.stream.as_mut().unwrap()),
        ["below a", "raw at a"]
    );
    assert_eq!(drain(raw_only.stream.as_mut().unwrap()), ["raw at a"]);
}

#[tokio::test]
async fn a_slow_reader_is_told_how_many_entries_it_missed() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    let mut reader = tree
        .read("main", ReadOptions::new().stream().stream_buffer(4))
        .unwrap();
    for i in 0..10 {
        log.info(format_args!("{i}"));
    }
    let stream = reader.stream.as_mut().unwrap();
    for i in 0..4 {
        assert_eq!(text(&entry(stream.next().await)), i.to_string());
    }
    assert!(matches!(stream.next().await, Some(Streamed::Missed(6))));
    log.info("after");
    assert_eq!(text(&entry(stream.next().await)), "after");
}

#[tokio::test]
async fn dropping_or_closing_a_reader_unsubscribes_it_at_once() {
    let tree = LogTree::new();
    let a = tree.read("main", ReadOptions::new().stream()).unwrap();
    let b = tree.read("main", ReadOptions::new().stream()).unwrap();
    assert_eq!(tree.usage().subscribers, 2);
    drop(a);
    assert_eq!(tree.usage().subscribers, 1);
    b.close();
    assert_eq!(tree.usage().subscribers, 0);
    // A reader without a stream never subscribes.
    let c = tree.read("main", ReadOptions::new().backlog_all()).unwrap();
    assert_eq!(tree.usage().subscribers, 0);
    drop(c);
}

#[tokio::test]
async fn the_stream_ends_when_the_tree_is_gone() {
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    let mut reader = tree.read("main", ReadOptions::new().stream()).unwrap();
    log.info("last words");
    drop((tree, log));
    let stream = reader.stream.as_mut().unwrap();
    assert_eq!(text(&entry(stream.next().await)), "last words");
    assert!(stream.next().await.is_none());
}

/// Readers that open while a writer is busy get every entry exactly once, in order, split
/// between backlog and stream with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_see_every_entry_exactly_once() {
    const N: u64 = 6000;
    let tree = LogTree::new();
    let log = tree.leveled_for("main").unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            log.info(i);
        }
    });
    let mut readers = Vec::new();
    for _ in 0..8 {
        let tree = tree.clone();
        readers.push(tokio::spawn(async move {
            let reader = tree
                .read(
                    "main",
                    ReadOptions::new()
                        .backlog_all()
                        .stream()
                        .stream_buffer(N as usize),
                )
                .unwrap();
            let mut seen: Vec<u64> = reader
                .backlog
                .iter()
                .map(|e| text(e).parse().unwrap())
                .collect();
            let mut stream = reader.stream.unwrap();
            while seen.last() != Some(&(N - 1)) {
                seen.push(text(&entry(stream.next().await)).parse().unwrap());
            }
            seen
        }));
        tokio::task::yield_now().await;
    }
    writer.join().unwrap();
    let expected: Vec<u64> = (0..N).collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected);
    }
}
