//! Policy: which identities a workload gets (docs/architecture.md, "Workload attestation" W5, "Trust model").
//!
//! - [`entry`]: validation of new registration entries at the admin boundary.
//! - [`template`]: SPIFFE ID templates rendered from the server's read of a pod.
//! - [`matching`]: selector matching of entries against verified evidence.

pub mod entry;
pub mod matching;
pub mod template;
