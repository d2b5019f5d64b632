//! `Debug` for the messages that carry a secret: the secret field prints as `<redacted>` (or
//! its length), every other field as usual. build.rs lists these messages.

use std::fmt;

const REDACTED: &str = "<redacted>";

impl fmt::Debug for crate::agent::JoinTokenAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTokenAttestation")
            .field("token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for crate::agent::K8sAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sAttestation")
            .field("cluster", &self.cluster)
            .field("token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for crate::agent::K8sEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sEvidence")
            .field("pod_uid", &self.pod_uid)
            .field("container_id", &self.container_id)
            .field("pod_name", &self.pod_name)
            .field("namespace", &self.namespace)
            .field("container_name", &self.container_name)
            .field("token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for crate::admin::JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for crate::workload::X509svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509SVID")
            .field("spiffe_id", &self.spiffe_id)
            .field("x509_svid", &format_args!("{} bytes", self.x509_svid.len()))
            .field("x509_svid_key", &REDACTED)
            .field("bundle", &format_args!("{} bytes", self.bundle.len()))
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for crate::workload::Jwtsvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JWTSVID")
            .field("spiffe_id", &self.spiffe_id)
            .field("svid", &REDACTED)
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for crate::workload::ValidateJwtsvidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJWTSVIDRequest")
            .field("audience", &self.audience)
            .field("svid", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::{admin, agent, workload};

    const SECRET: &str = "s3cret-value";

    #[test]
    fn no_secret_field_prints() {
        let printed = [
            format!(
                "{:?}",
                agent::JoinTokenAttestation {
                    token: SECRET.into()
                }
            ),
            format!(
                "{:?}",
                agent::K8sAttestation {
                    cluster: "prod".into(),
                    token: SECRET.into()
                }
            ),
            format!(
                "{:?}",
                agent::K8sEvidence {
                    pod_name: "web".into(),
                    token: SECRET.into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                admin::JoinToken {
                    token: SECRET.into(),
                    expires_at: 1
                }
            ),
            format!(
                "{:?}",
                workload::X509svid {
                    spiffe_id: "spiffe://td/w".into(),
                    x509_svid_key: SECRET.as_bytes().to_vec(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                workload::Jwtsvid {
                    svid: SECRET.into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                workload::ValidateJwtsvidRequest {
                    svid: SECRET.into(),
                    audience: "a".into()
                }
            ),
        ];
        for p in &printed {
            assert!(!p.contains(SECRET), "{p}");
            assert!(p.contains("<redacted>"), "{p}");
        }
        // The byte form of the key is not printed either (prost would print it as a list).
        let key_bytes = format!("{:?}", SECRET.as_bytes());
        assert!(
            !printed[4].contains(key_bytes.trim_matches(['[', ']'])),
            "{}",
            printed[4]
        );
        // Other fields still print.
        assert!(printed[2].contains("web") && printed[1].contains("prod"));
    }
}
