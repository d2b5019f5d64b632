//! Outcomes of a decision: issued, denied, or unavailable (docs/architecture.md, "Outcomes").
//!
//! The distinction is the point. A [`Denial`] is a decision: the evidence does not entitle
//! the caller, and whoever holds an SVID for it drops it. An [`Unavailable`] is a fault (a
//! datastore, audit or API server error, a timeout): nothing is issued, and whoever holds a
//! valid SVID keeps it until its `notAfter` and retries. Never fold one into the other.

use std::fmt;

use crate::factor::Factor;

/// A refusal, naming the one factor that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The factor that failed.
    pub factor: Factor,
    /// What was wrong, for the audit log (never a token, key or certificate).
    pub reason: String,
}

impl Denial {
    /// A denial on `factor`.
    pub fn new(factor: Factor, reason: impl Into<String>) -> Self {
        Denial {
            factor,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied ({}): {}", self.factor, self.reason)
    }
}

/// A fault that stopped a decision. Retry later; never revoke on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// Which dependency failed.
    pub source: Factor,
    /// What failed, for logs.
    pub reason: String,
}

impl Unavailable {
    /// A fault of `source` (`Store`, `Api`, ...).
    pub fn new(source: Factor, reason: impl Into<String>) -> Self {
        Unavailable {
            source,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unavailable ({}): {}", self.source, self.reason)
    }
}

/// Why a decision produced nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A decision: drop and remember.
    Denied(Denial),
    /// A fault: keep what is held, retry.
    Unavailable(Unavailable),
}

impl Refusal {
    /// A denial on `factor`.
    pub fn denied(factor: Factor, reason: impl Into<String>) -> Self {
        Refusal::Denied(Denial::new(factor, reason))
    }

    /// A fault of `source`.
    pub fn unavailable(source: Factor, reason: impl Into<String>) -> Self {
        Refusal::Unavailable(Unavailable::new(source, reason))
    }

    /// The factor named: the failed one for a denial, the failed dependency for a fault.
    pub fn factor(&self) -> Factor {
        match self {
            Refusal::Denied(d) => d.factor,
            Refusal::Unavailable(u) => u.source,
        }
    }

    /// Whether this is a fault rather than a decision.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Refusal::Unavailable(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied(d) => d.fmt(f),
            Refusal::Unavailable(u) => u.fmt(f),
        }
    }
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        Refusal::Denied(d)
    }
}

impl From<Unavailable> for Refusal {
    fn from(u: Unavailable) -> Self {
        Refusal::Unavailable(u)
    }
}

/// The outcome of one mint item: exactly one of issued, denied or unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Issued.
    Issued(T),
    /// A decision against it.
    Denied(Denial),
    /// A fault; retry.
    Unavailable(Unavailable),
}

impl<T> Outcome<T> {
    /// `Label` for metrics: `issued`, `denied` or `unavailable`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Issued(_) => "issued",
            Outcome::Denied(_) => "denied",
            Outcome::Unavailable(_) => "unavailable",
        }
    }
}

impl<T> From<Result<T, Refusal>> for Outcome<T> {
    fn from(r: Result<T, Refusal>) -> Self {
        match r {
            Ok(t) => Outcome::Issued(t),
            Err(Refusal::Denied(d)) => Outcome::Denied(d),
            Err(Refusal::Unavailable(u)) => Outcome::Unavailable(u),
        }
    }
}
