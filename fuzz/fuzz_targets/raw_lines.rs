//! The raw line splitter keeps every line of any byte stream, bounded, without panicking.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use supervisor::logtree::{LogTree, RAW_LINE_MAX, ReadOptions};

fuzz_target!(|chunks: Vec<Vec<u8>>| {
    let tree = LogTree::new();
    {
        let mut raw = tree.raw_for("proc").unwrap();
        for chunk in &chunks {
            raw.write_all(chunk).unwrap();
        }
    }
    let all = chunks.concat();
    let mut lines = all.split(|&b| b == b'\n').count();
    if all.is_empty() || all.last() == Some(&b'\n') {
        lines -= 1;
    }
    let read = tree.read("proc", ReadOptions::new().backlog_all()).unwrap();
    assert_eq!(read.backlog.len(), lines.min(8192));
    assert!(read.backlog.iter().all(|e| e.raw().unwrap().data().len() <= RAW_LINE_MAX));
});
