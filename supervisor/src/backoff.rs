//! How long a failed node waits before it is started again.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::error::ConfigError;

/// Exponential backoff with jitter, for restarts of nodes that failed (`Dead`).
///
/// The `n`th consecutive restart of a node waits `initial × multiplierⁿ⁻¹`, capped at
/// `max`, then randomised by ± `randomization` of itself (and capped at `max` again). It
/// never gives up. A node's backoff resets when it signals `Healthy` or `Done`. Cancelled
/// nodes restart at once: only failure is penalised.
///
/// The defaults follow the Go original: 500 ms initial, ×1.5, ±50 %, 60 s cap. Set it for a
/// whole tree with [`Builder::backoff`](crate::Builder::backoff) and for the members of one
/// group with [`Group::backoff`](crate::Group::backoff).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::Backoff;
///
/// let quick = Backoff::default()
///     .initial(Duration::from_millis(10))
///     .max(Duration::from_secs(1))
///     .multiplier(2.0)?;
/// assert_eq!(quick.initial_delay(), Duration::from_millis(10));
///
/// // Out-of-range values are refused with the rule they break.
/// let err = Backoff::default().randomization(1.5).unwrap_err();
/// assert!(err.to_string().contains("between 0 and 1"));
/// # Ok::<(), supervisor::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    randomization: f64,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            multiplier: 1.5,
            randomization: 0.5,
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// No delay at all: a failed node is started again at once. Meant for tests and
    /// benchmarks; in production a crash loop then burns a core.
    pub fn none() -> Self {
        Backoff::constant(Duration::ZERO)
    }

    /// The same delay before every restart, without jitter.
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            multiplier: 1.0,
            randomization: 0.0,
            max: delay,
        }
    }

    /// Sets the delay before the first restart (before jitter).
    pub fn initial(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// Sets the longest delay between restarts; no delay, with jitter, exceeds it.
    pub fn max(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// Sets the factor by which the delay grows after each restart. Must be finite and at
    /// least 1.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the value and the rule if `factor` is below 1, infinite or
    /// NaN.
    pub fn multiplier(mut self, factor: f64) -> Result<Self, ConfigError> {
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(ConfigError {
                setting: "backoff multiplier",
                value: factor.to_string(),
                rule: "it must be a finite number of at least 1",
            });
        }
        self.multiplier = factor;
        Ok(self)
    }

    /// Sets the jitter: each delay is moved by a random amount of up to this fraction of
    /// itself, either way. Must be between 0 and 1.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the value and the rule if `fraction` is outside `0..=1` (NaN
    /// included).
    pub fn randomization(mut self, fraction: f64) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(ConfigError {
                setting: "backoff randomization",
                value: fraction.to_string(),
                rule: "it must be a number between 0 and 1",
            });
        }
        self.randomization = fraction;
        Ok(self)
    }

    /// The delay before the first restart, before jitter.
    pub fn initial_delay(&self) -> Duration {
        self.initial
    }

    /// The longest delay between restarts.
    pub fn max_delay(&self) -> Duration {
        self.max
    }

    fn capped(&self, d: Duration) -> Duration {
        d.min(self.max)
    }
}

/// One node's progress along its [`Backoff`]: the un-jittered delay of its next restart.
/// The policy itself is the node's (shared by its group), passed in.
#[derive(Clone, Debug)]
pub(crate) struct BackoffState {
    next: Duration,
}

impl BackoffState {
    pub(crate) fn new(policy: &Backoff) -> Self {
        BackoffState {
            next: policy.capped(policy.initial),
        }
    }

    pub(crate) fn reset(&mut self, policy: &Backoff) {
        self.next = policy.capped(policy.initial);
    }

    /// The delay to wait before this restart; advances to the next one.
    pub(crate) fn next_delay(&mut self, policy: &Backoff, rng: &mut Rng) -> Duration {
        let base = self.next;
        if base.is_zero() {
            // No backoff: zero scaled and spread is zero, now and for every later restart.
            return Duration::ZERO;
        }
        self.next = policy.capped(scale(base, policy.multiplier).max(base));
        let spread = policy.randomization * (2.0 * rng.unit() - 1.0);
        policy.capped(scale(base, 1.0 + spread))
    }
}

/// `d × factor`, saturating instead of panicking as `Duration::mul_f64` does on overflow
/// (a `max` of `Duration::MAX` is a legitimate setting).
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// A small, fast, non-cryptographic generator for jitter (xorshift64*), seeded from the
/// process's random hasher keys so that supervisors started together do not restart in
/// lockstep.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_entropy() -> Self {
        let seed = RandomState::new().hash_one(0x5eed_u64);
        Rng(seed | 1)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        // The top 53 bits, as a fraction.
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_jitter_and_caps() {
        let mut rng = Rng::from_entropy();
        let policy = Backoff::default();
        let mut state = BackoffState::new(&policy);
        let mut base = 0.5;
        for _ in 0..30 {
            let d = state.next_delay(&policy, &mut rng).as_secs_f64();
            assert!(
                d >= base * 0.5 - 1e-9 && d <= (base * 1.5).min(60.0) + 1e-9,
                "{d} vs {base}"
            );
            base = (base * 1.5).min(60.0);
        }
        state.reset(&policy);
        let d = state.next_delay(&policy, &mut rng).as_secs_f64();
        assert!((0.25..=0.75).contains(&d), "after reset: {d}");
    }

    #[test]
    fn huge_settings_saturate_instead_of_panicking() {
        let mut rng = Rng::from_entropy();
        let policy = Backoff::default()
            .initial(Duration::MAX)
            .max(Duration::MAX)
            .multiplier(1e300)
            .unwrap();
        let mut state = BackoffState::new(&policy);
        for _ in 0..3 {
            assert!(state.next_delay(&policy, &mut rng) > Duration::from_secs(1));
        }
    }

    #[test]
    fn none_is_zero_and_rejects_bad_floats() {
        let mut rng = Rng::from_entropy();
        let none = Backoff::none();
        let mut state = BackoffState::new(&none);
        assert_eq!(state.next_delay(&none, &mut rng), Duration::ZERO);
        assert!(Backoff::default().multiplier(0.5).is_err());
        assert!(Backoff::default().multiplier(f64::NAN).is_err());
        assert!(Backoff::default().randomization(-0.1).is_err());
        assert!(Backoff::default().randomization(f64::NAN).is_err());
    }

    #[test]
    fn rng_spreads_over_the_unit_interval() {
        let mut rng = Rng::from_entropy();
        let xs: Vec<f64> = (0..1000).map(|_| rng.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|&x| x < 0.1) && xs.iter().any(|&x| x > 0.9));
    }
}
