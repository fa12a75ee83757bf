//! The checklist `svctoken doctor` prints: one line per check, `pass`, `warn` or `fail`.

use std::fmt;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// As Convex needs it.
    Pass,
    /// Works, but something will bite later (a rotation, a cloud deployment).
    Warn,
    /// Convex would refuse the issuer or its tokens.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One check's outcome: what was checked and what was found (with what to change when it is
/// not a pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// How it came out.
    pub(crate) status: Status,
    /// What it says.
    pub(crate) detail: String,
}

impl Outcome {
    /// A pass.
    pub(crate) fn pass(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Pass,
            detail: detail.into(),
        }
    }

    /// A warning.
    pub(crate) fn warn(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Warn,
            detail: detail.into(),
        }
    }

    /// A failure.
    pub(crate) fn fail(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Fail,
            detail: detail.into(),
        }
    }
}

/// The checklist, printed to standard output as it grows.
#[derive(Debug, Default)]
pub(crate) struct Report {
    counts: [usize; 3],
}

impl Report {
    /// Prints `outcome` as the line of check `name` and counts it.
    pub(crate) fn add(&mut self, name: &str, outcome: Outcome) {
        println!("{}  {name}: {}", outcome.status, outcome.detail);
        self.counts[outcome.status as usize] += 1;
    }

    /// Whether any check failed.
    pub(crate) fn failed(&self) -> bool {
        self.counts[Status::Fail as usize] > 0
    }

    /// Prints the closing tally.
    pub(crate) fn summary(&self) {
        let [pass, warn, fail] = self.counts;
        println!("summary: {pass} pass, {warn} warn, {fail} fail");
    }
}
