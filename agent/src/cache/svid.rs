//! One workload X509-SVID as the agent holds it.

use std::time::SystemTime;

use sworn_identity::Grant;
use zeroize::Zeroizing;

/// One workload X509-SVID held by the agent.
pub struct WorkloadSvid {
    /// The SPIFFE ID (the leaf's URI SAN).
    pub spiffe_id: String,
    /// The entry it was minted for, or a pod's default identity.
    pub entry_id: Grant,
    /// DER chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub key: Zeroizing<Vec<u8>>,
    /// The entry's hint.
    pub hint: String,
    /// Leaf `notBefore`.
    pub not_before: SystemTime,
    /// Leaf `notAfter`.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for WorkloadSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("entry_id", &self.entry_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}
