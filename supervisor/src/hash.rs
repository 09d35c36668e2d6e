//! A fast hasher for the supervisor's internal maps, keyed by names and DNs that come from
//! the program itself. SipHash's resistance to crafted keys buys nothing there and costs a
//! measurable share of starting a runnable.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The multiply-rotate hash of rustc's `FxHasher`.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// Mixes the state so that every output bit depends on every input bit. The raw
    /// multiply-rotate state keeps the low bits nearly fixed for keys that share their first
    /// bytes (`n0`, `n1`, …, or DNs starting `root.`), and the map picks buckets by the low
    /// bits: without this, such keys pile into a few buckets and lookups turn linear.
    #[inline]
    fn finish(&self) -> u64 {
        // MurmurHash3's 64-bit finaliser.
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A `HashSet` with [`FxHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// The [`FxHasher`] hash of a name, as [`FastMap`] would compute it: for tables that hash
/// keys stored elsewhere.
pub(crate) fn hash_name(name: &str) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_a_common_prefix_spread_over_the_low_bits() {
        let build = BuildHasherDefault::<FxHasher>::default();
        for prefix in ["n", "root.n", "root.net.worker_"] {
            let hashes: Vec<u64> = (0..4096)
                .map(|i| build.hash_one(format!("{prefix}{i}")))
                .collect();
            // The map picks a bucket by the low bits and compares a 7-bit tag from the top
            // bits before comparing keys: both must spread, or lookups compare many keys.
            let buckets: std::collections::HashSet<u64> =
                hashes.iter().map(|h| h & 0xfff).collect();
            let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            // Random keys fill about 63 % of 4096 buckets and all 128 tags.
            assert!(buckets.len() > 2400, "{prefix}: {} buckets", buckets.len());
            assert!(tags.len() > 120, "{prefix}: {} tags", tags.len());
        }
    }

    #[test]
    fn distinguishes_names_and_works_as_a_map() {
        let mut m: FastMap<Box<str>, u32> = FastMap::default();
        for i in 0..10_000 {
            m.insert(format!("n{i}").into(), i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get("n4242"), Some(&4242));
        assert_eq!(m.get("n10000"), None);
    }
}
