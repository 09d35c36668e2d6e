//! The klog parser never panics, and what it accepts is well formed.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use supervisor::logtree::klog;

fuzz_target!(|line: &str| {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(entry) = klog::parse(line, now) {
        assert!(!entry.message.is_empty());
        assert!(entry.timestamp.is_some_and(|t| t <= now + Duration::from_secs(3600)));
    }
});
