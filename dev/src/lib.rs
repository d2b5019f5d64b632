//! Local sworn environments.
