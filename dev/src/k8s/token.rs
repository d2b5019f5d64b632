//! Service-account tokens signed locally with the API server's own key.
//!
//! Only for cases the real API refuses to produce: an expired token
//! (TokenRequest's minimum lifetime is 600 s), or a token whose node or
//! service account differs from its pod's. The claim set mirrors what
//! kube-apiserver puts in bound tokens (KEP-1205 bound service-account tokens,
//! KEP-4193 node binding): `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and
//! the private `kubernetes.io` claim with `namespace`, `pod`, `serviceaccount`
//! and `node`. The JWS is ES256 (RFC 7518 §3.4: fixed-width `r || s`) with the
//! `kid` the API server itself uses for the key.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

/// Errors forging a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The service-account key could not be loaded for signing.
    #[error("loading the service-account key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing the token failed")]
    Sign,
}

/// A `name` + `uid` reference inside the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object UID.
    pub uid: String,
}

/// The claims of a locally signed service-account token. Build one with
/// `Kubelet::forge_claims_for_pod` and change what the test needs wrong.
#[derive(Debug, Clone)]
pub struct ForgedClaims {
    /// `iss`: the API server's `--service-account-issuer`.
    pub issuer: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `kubernetes.io.namespace`, also the namespace in `sub`.
    pub namespace: String,
    /// `kubernetes.io.serviceaccount`; its name is also in `sub`.
    pub service_account: ObjectRef,
    /// `kubernetes.io.pod`: the bound pod, if any.
    pub pod: Option<ObjectRef>,
    /// `kubernetes.io.node`: the pod's node, if any.
    pub node: Option<ObjectRef>,
    /// `iat`, seconds since the epoch.
    pub issued_at: i64,
    /// `nbf`, seconds since the epoch.
    pub not_before: i64,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `jti`: the credential ID TokenReview reports.
    pub jti: String,
}

impl ForgedClaims {
    /// Makes the token expired: issued `lifetime_secs + age_secs` ago, expired
    /// `age_secs` ago.
    pub fn expired(mut self, age_secs: i64, lifetime_secs: i64) -> Self {
        let now = now_secs();
        self.expires_at = now - age_secs;
        self.issued_at = self.expires_at - lifetime_secs;
        self.not_before = self.issued_at;
        self
    }

    /// The JSON claim set.
    pub fn to_json(&self) -> serde_json::Value {
        let mut k8s = serde_json::Map::new();
        k8s.insert("namespace".into(), json!(self.namespace));
        if let Some(pod) = &self.pod {
            k8s.insert("pod".into(), json!({"name": pod.name, "uid": pod.uid}));
        }
        if let Some(node) = &self.node {
            k8s.insert("node".into(), json!({"name": node.name, "uid": node.uid}));
        }
        k8s.insert(
            "serviceaccount".into(),
            json!({"name": self.service_account.name, "uid": self.service_account.uid}),
        );
        json!({
            "aud": self.audiences,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "iss": self.issuer,
            "jti": self.jti,
            "kubernetes.io": k8s,
            "nbf": self.not_before,
            "sub": format!("system:serviceaccount:{}:{}", self.namespace, self.service_account.name),
        })
    }
}

/// Signs `claims` as a compact ES256 JWS with the PKCS#8 P-256 key.
pub(crate) fn sign_es256(
    pkcs8: &[u8],
    key_id: &str,
    claims: &serde_json::Value,
) -> Result<String, TokenError> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|e| TokenError::Key(e.to_string()))?;
    let header = json!({"alg": "ES256", "kid": key_id});
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let sig = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| TokenError::Sign)?;
    Ok(format!("{signing_input}.{}", base64url(sig.as_ref())))
}

/// Unpadded base64url (RFC 7515 §2).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn expired_claims_lie_in_the_past() {
        let claims = ForgedClaims {
            issuer: "https://issuer".into(),
            audiences: vec!["sworn".into()],
            namespace: "ns".into(),
            service_account: ObjectRef {
                name: "sa".into(),
                uid: "u".into(),
            },
            pod: None,
            node: None,
            issued_at: 0,
            not_before: 0,
            expires_at: 0,
            jti: "j".into(),
        }
        .expired(60, 600);
        let now = now_secs();
        assert!(claims.expires_at <= now - 60);
        assert_eq!(claims.expires_at - claims.issued_at, 600);
        assert_eq!(claims.to_json()["sub"], "system:serviceaccount:ns:sa");
    }
}
