//! Time, injected: the only place that reads the system clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time. Rotation and minting take one, so tests can drive months of
/// key rotation without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (JWT `NumericDate`).
    fn unix_secs(&self) -> u64 {
        unix_secs(self.now())
    }
}

/// Whole seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The time `secs` seconds after the Unix epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct MockClock(std::sync::Mutex<SystemTime>);

#[cfg(any(test, feature = "test-util"))]
impl MockClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        MockClock(std::sync::Mutex::new(start))
    }

    /// A clock standing at `secs` after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(from_unix_secs(secs))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
