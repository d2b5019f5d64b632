//! What a Workload API caller is told when it gets nothing; the reason goes to the audit log.

use tonic::Status;

/// The caller is entitled to nothing (or its last identity went away).
pub fn no_identity() -> Status {
    Status::permission_denied("no identity issued")
}

/// The agent has not attested or synced yet: retry.
pub fn not_ready() -> Status {
    Status::unavailable("the agent is not attested yet")
}
