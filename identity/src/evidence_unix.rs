//! Unix evidence as the server reads it (docs/architecture.md, "Bounded input"): the
//! executable's path and digest and the group list are bounded before they are logged,
//! audited or matched.

use sworn_proto::agent as pb;

use crate::evidence_bounds::{
    EvidenceError, MAX_PATH_BYTES, MAX_SHA256_BYTES, MAX_SUPPLEMENTARY_GIDS, check_len,
};
use crate::factor::Factor;
use crate::unix::UnixFacts;

impl UnixFacts {
    /// Parses `UnixEvidence` as an agent sent it. A path or digest the agent could not
    /// read is empty and stays allowed (no selector matches it); only the bounds refuse,
    /// factor `evidence`.
    pub fn from_proto(e: pb::UnixEvidence) -> Result<Self, EvidenceError> {
        let bound = |field, len, limit| check_len(Factor::Evidence, field, len, limit, false);
        bound("path", e.path.len(), MAX_PATH_BYTES)?;
        bound("sha256", e.sha256.len(), MAX_SHA256_BYTES)?;
        bound(
            "supplementary_gids",
            e.supplementary_gids.len(),
            MAX_SUPPLEMENTARY_GIDS,
        )?;
        Ok(UnixFacts::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_evidence_is_bounded() {
        let ok = pb::UnixEvidence {
            uid: 1,
            gid: 1,
            path: "/usr/bin/app".into(),
            sha256: "a".repeat(64),
            supplementary_gids: vec![2, 3],
        };
        assert_eq!(
            UnixFacts::from_proto(ok.clone()).unwrap().path,
            "/usr/bin/app"
        );
        let long = pb::UnixEvidence {
            path: format!("/{}", "p".repeat(MAX_PATH_BYTES)),
            ..ok.clone()
        };
        assert_eq!(UnixFacts::from_proto(long).unwrap_err().field, "path");
        let digest = pb::UnixEvidence {
            sha256: "a".repeat(65),
            ..ok
        };
        assert_eq!(UnixFacts::from_proto(digest).unwrap_err().field, "sha256");
    }
}
