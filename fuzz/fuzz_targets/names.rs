//! DN validation accepts exactly names joined by dots, each `^[a-z0-9_]{1,64}$`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor::logtree::{LogTree, ReadOptions};

fuzz_target!(|dn: &str| {
    let valid = !dn.is_empty()
        && dn.split('.').all(|n| {
            (1..=64).contains(&n.len())
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    let tree = LogTree::new();
    assert_eq!(tree.leveled_for(dn).is_ok(), valid);
    assert_eq!(tree.read(dn, ReadOptions::new().backlog_all()).is_ok(), valid || dn.is_empty());
});
