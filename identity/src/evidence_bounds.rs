//! The limits of every field an agent (or anyone reaching the agent API before attesting)
//! sends, and the one error that names a field that broke them (docs/architecture.md,
//! "Bounded input").
//!
//! Each field is checked once, where the wire message becomes a typed value, before anything
//! logs or stores it: an oversized `cluster` in an unauthenticated `Attest` must not reach the
//! audit table or the log. A refusal names the field and its limit; the audit row keeps only
//! [`preview`] of the value, never the value.

use std::fmt;

use crate::factor::Factor;

/// Longest cluster name: a DNS-1123 label, as the server's `[[clusters]] name`.
pub const MAX_CLUSTER_BYTES: usize = 63;
/// Longest service-account token accepted (a projected token is about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest join token (the server hands out 64 hex digits).
pub const MAX_JOIN_TOKEN_BYTES: usize = 128;
/// Largest CSR (DER). A P-256 request without extensions is about 250 bytes.
pub const MAX_CSR_BYTES: usize = 4096;
/// Longest pod name: a DNS-1123 subdomain.
pub const MAX_POD_NAME_BYTES: usize = 253;
/// Longest namespace or container name: a DNS-1123 label.
pub const MAX_LABEL_BYTES: usize = 63;
/// Longest pod UID or entry ID text (a hyphenated UUID).
pub const MAX_UUID_BYTES: usize = 36;
/// Longest container ID (64 hex digits).
pub const MAX_CONTAINER_ID_BYTES: usize = 64;
/// Longest executable path (Linux `PATH_MAX`, including the NUL).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest executable digest (64 hex digits).
pub const MAX_SHA256_BYTES: usize = 64;
/// Most supplementary groups (Linux `NGROUPS_MAX`).
pub const MAX_SUPPLEMENTARY_GIDS: usize = 65_536;

/// What was wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Empty where a value is required.
    Missing,
    /// Longer than its limit (bytes, or items for a list).
    TooLong {
        /// The length sent.
        len: usize,
        /// The most allowed.
        limit: usize,
    },
    /// Within its limit, but not of its form.
    Malformed(&'static str),
}

/// A field an agent sent that was refused, with the factor a denial for it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct EvidenceError {
    /// The factor the refusal names.
    pub factor: Factor,
    /// The field, as the wire message names it (`cluster`, `pod_name`, ...).
    pub field: &'static str,
    /// What was wrong.
    pub problem: Problem,
}

impl fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match self.problem {
            Problem::Missing => write!(f, "field `{field}` is missing"),
            Problem::TooLong { len, limit } => {
                write!(
                    f,
                    "field `{field}` is {len} long, over its limit of {limit}"
                )
            }
            Problem::Malformed(why) => write!(f, "field `{field}` is malformed: {why}"),
        }
    }
}

impl EvidenceError {
    /// The factor a denial for this names.
    pub fn factor(&self) -> Factor {
        self.factor
    }

    /// A refusal of `field` for `problem`.
    pub fn new(factor: Factor, field: &'static str, problem: Problem) -> Self {
        EvidenceError {
            factor,
            field,
            problem,
        }
    }
}

/// `len` against `limit` for `field`: too long, or (when `required`) empty, is refused.
pub fn check_len(
    factor: Factor,
    field: &'static str,
    len: usize,
    limit: usize,
    required: bool,
) -> Result<(), EvidenceError> {
    if required && len == 0 {
        return Err(EvidenceError::new(factor, field, Problem::Missing));
    }
    if len > limit {
        return Err(EvidenceError::new(
            factor,
            field,
            Problem::TooLong { len, limit },
        ));
    }
    Ok(())
}

/// How much of a refused value an audit row or a log line may show.
/// 64: a UUID, a DNS label or a typical name fits whole, so a refused value of an ordinary
/// length is shown as it was sent.
pub const PREVIEW_CHARS: usize = 64;

/// A bounded, escaped stand-in for an untrusted value: its first [`PREVIEW_CHARS`]
/// characters with control characters and quotes escaped, and, when cut, a marker with the
/// full length. Never longer than about 4 × [`PREVIEW_CHARS`] + 32 bytes.
pub fn preview(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(PREVIEW_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(PREVIEW_CHARS).is_some() {
        out.push_str(&format!("…[{} bytes]", value.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_field_and_its_limit() {
        let e =
            check_len(Factor::Cluster, "cluster", 3 << 20, MAX_CLUSTER_BYTES, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `cluster` is 3145728 long, over its limit of 63"
        );
        assert_eq!(e.factor(), Factor::Cluster);
        let missing = check_len(Factor::N1, "token", 0, 10, true).unwrap_err();
        assert_eq!(missing.to_string(), "field `token` is missing");
        assert!(check_len(Factor::N1, "token", 0, 10, false).is_ok());
    }

    #[test]
    fn a_preview_is_short_and_escaped() {
        assert_eq!(preview("dev"), "dev");
        let long = "x".repeat(3 << 20);
        let p = preview(&long);
        assert!(p.len() < PREVIEW_CHARS + 32, "{p}");
        // An ordinary value, such as a UUID, is shown whole.
        let uuid = "20420472-D90C-4E0A-96BC-4EF370EDB1CF";
        assert_eq!(preview(uuid), uuid);
        assert!(p.ends_with("[3145728 bytes]"), "{p}");
        assert_eq!(preview("a\"b\nc"), "a\\\"b\\nc");
    }
}
