//! Selectors: the facts an entry requires of a workload (docs/architecture.md, "Factors":
//! W5 and `policy`).
//!
//! A selector is written `TYPE:KEY:VALUE` (`unix:uid:1000`,
//! `k8s:pod-label:app:web`). It is parsed once, at the edge, into
//! [`Selector`]; an instance is always valid and prints back in canonical
//! form, so stored selectors compare by string.

use std::fmt;
use std::str::FromStr;

use crate::pod_id::PodUid;

/// Why a selector string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Not `TYPE:KEY:VALUE`.
    #[error("selector {0:?} is not TYPE:KEY:VALUE (e.g. unix:uid:1000, k8s:ns:default)")]
    Shape(String),
    /// The type is neither `unix` nor `k8s`.
    #[error("selector type {0:?} is unknown; use unix or k8s")]
    UnknownType(String),
    /// The key is unknown for the type.
    #[error("selector key {key:?} is unknown for type {kind}; known: {known}")]
    UnknownKey {
        /// The type.
        kind: &'static str,
        /// The key given.
        key: String,
        /// The keys the type has.
        known: &'static str,
    },
    /// The value does not fit the key.
    #[error("selector {selector:?}: {reason}")]
    Value {
        /// The whole selector as given.
        selector: String,
        /// What is wrong with the value.
        reason: &'static str,
    },
}

/// One validated selector.
///
/// The payload is private: a `Selector` is built only by [`FromStr`] or by the constructors
/// below, which check the value the same way, so an instance is always valid and an
/// invalid fact (an empty node name, a tag where a digest belongs) can never become one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    /// `unix:uid:N`: the caller's effective uid.
    UnixUid(u32),
    /// `unix:gid:N`: the caller's effective gid (or a supplementary group).
    UnixGid(u32),
    /// `unix:path:P`: absolute path of the caller's executable.
    UnixPath(String),
    /// `unix:sha256:H`: SHA-256 of the caller's executable, lowercase hex.
    UnixSha256(String),
    /// `k8s:ns:NAME`: the pod's namespace.
    K8sNamespace(String),
    /// `k8s:sa:NAME`: the pod's service account.
    K8sServiceAccount(String),
    /// `k8s:pod-label:KEY:VALUE`: a pod label.
    K8sPodLabel(String, String),
    /// `k8s:pod-uid:UID`.
    K8sPodUid(PodUid),
    /// `k8s:pod-name:NAME`.
    K8sPodName(String),
    /// `k8s:container-name:NAME`: the calling container's name.
    K8sContainerName(String),
    /// `k8s:container-image:DIGEST`: the image digest from the calling container's status
    /// `imageID` (`sha256:<hex>`), never a mutable tag.
    K8sContainerImage(String),
    /// `k8s:node-name:NAME`.
    K8sNodeName(String),
}

const UNIX_KEYS: &str = "uid, gid, path, sha256";
const K8S_KEYS: &str =
    "ns, sa, pod-label, pod-uid, pod-name, container-name, container-image, node-name";

fn refused(kind: &str, key: &str, value: &str, reason: &'static str) -> SelectorError {
    SelectorError::Value {
        selector: format!("{kind}:{key}:{value}"),
        reason,
    }
}

fn k8s(
    key: &str,
    value: &str,
    valid: fn(&str) -> bool,
    reason: &'static str,
    repr: fn(String) -> Repr,
) -> Result<Selector, SelectorError> {
    if valid(value) {
        Ok(Selector(repr(value.to_owned())))
    } else {
        Err(refused("k8s", key, value, reason))
    }
}

impl Selector {
    /// `unix:uid:N`.
    pub fn unix_uid(uid: u32) -> Self {
        Selector(Repr::UnixUid(uid))
    }

    /// `unix:gid:N`.
    pub fn unix_gid(gid: u32) -> Self {
        Selector(Repr::UnixGid(gid))
    }

    /// `unix:path:P`: `path` must be absolute, without NUL and without `.` or `..` segments.
    pub fn unix_path(path: &str) -> Result<Self, SelectorError> {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(refused("unix", "path", path, "path must be absolute"));
        }
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(refused(
                "unix",
                "path",
                path,
                "path must not contain . or .. segments",
            ));
        }
        Ok(Selector(Repr::UnixPath(path.to_owned())))
    }

    /// `unix:sha256:H`: 64 lowercase hex digits.
    pub fn unix_sha256(hex: &str) -> Result<Self, SelectorError> {
        if is_sha256_hex(hex) {
            Ok(Selector(Repr::UnixSha256(hex.to_owned())))
        } else {
            Err(refused(
                "unix",
                "sha256",
                hex,
                "sha256 must be 64 lowercase hex digits",
            ))
        }
    }

    /// `k8s:ns:NAME`: a DNS-1123 label.
    pub fn k8s_namespace(name: &str) -> Result<Self, SelectorError> {
        k8s(
            "ns",
            name,
            is_dns_label,
            "namespace must be a DNS-1123 label",
            Repr::K8sNamespace,
        )
    }

    /// `k8s:sa:NAME`: a DNS-1123 subdomain.
    pub fn k8s_service_account(name: &str) -> Result<Self, SelectorError> {
        k8s(
            "sa",
            name,
            is_dns_subdomain,
            "service account must be a DNS-1123 subdomain",
            Repr::K8sServiceAccount,
        )
    }

    /// `k8s:pod-name:NAME`: a DNS-1123 subdomain.
    pub fn k8s_pod_name(name: &str) -> Result<Self, SelectorError> {
        k8s(
            "pod-name",
            name,
            is_dns_subdomain,
            "pod name must be a DNS-1123 subdomain",
            Repr::K8sPodName,
        )
    }

    /// `k8s:node-name:NAME`: a DNS-1123 subdomain (so never empty).
    pub fn k8s_node_name(name: &str) -> Result<Self, SelectorError> {
        k8s(
            "node-name",
            name,
            is_dns_subdomain,
            "node name must be a DNS-1123 subdomain",
            Repr::K8sNodeName,
        )
    }

    /// `k8s:container-name:NAME`: a DNS-1123 label.
    pub fn k8s_container_name(name: &str) -> Result<Self, SelectorError> {
        k8s(
            "container-name",
            name,
            is_dns_label,
            "container name must be a DNS-1123 label",
            Repr::K8sContainerName,
        )
    }

    /// `k8s:pod-uid:UID`. Every [`PodUid`] is valid.
    pub fn k8s_pod_uid(uid: &PodUid) -> Self {
        Selector(Repr::K8sPodUid(*uid))
    }

    /// `k8s:container-image:sha256:<64 lowercase hex>`: a digest, never a tag (tags are
    /// mutable).
    pub fn k8s_container_image(digest: &str) -> Result<Self, SelectorError> {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(refused(
                "k8s",
                "container-image",
                digest,
                "container image must be a digest sha256:<64 hex> (tags are mutable)",
            ));
        };
        if is_sha256_hex(hex) {
            Ok(Selector(Repr::K8sContainerImage(digest.to_owned())))
        } else {
            Err(refused(
                "k8s",
                "container-image",
                digest,
                "container image digest must be sha256:<64 lowercase hex>",
            ))
        }
    }

    /// `k8s:pod-label:KEY:VALUE`: a Kubernetes label key and value (the value may be empty).
    pub fn k8s_pod_label(key: &str, value: &str) -> Result<Self, SelectorError> {
        let whole = format!("{key}:{value}");
        if !is_label_key(key) {
            return Err(refused(
                "k8s",
                "pod-label",
                &whole,
                "label key is not a valid Kubernetes label key",
            ));
        }
        if !is_label_value(value) {
            return Err(refused(
                "k8s",
                "pod-label",
                &whole,
                "label value is not a valid Kubernetes label value",
            ));
        }
        Ok(Selector(Repr::K8sPodLabel(
            key.to_owned(),
            value.to_owned(),
        )))
    }

    /// Whether this is a `unix:sha256` selector (the only one that needs the caller's
    /// executable hashed).
    pub fn is_unix_sha256(&self) -> bool {
        matches!(self.0, Repr::UnixSha256(_))
    }

    /// `unix` or `k8s`.
    pub fn kind(&self) -> &'static str {
        match self.0 {
            Repr::UnixUid(_) | Repr::UnixGid(_) | Repr::UnixPath(_) | Repr::UnixSha256(_) => "unix",
            _ => "k8s",
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| SelectorError::Shape(s.to_owned()))?;
        let (key, value) = rest
            .split_once(':')
            .ok_or_else(|| SelectorError::Shape(s.to_owned()))?;
        if value.is_empty() {
            return Err(SelectorError::Shape(s.to_owned()));
        }
        match kind {
            "unix" => match key {
                "uid" => parse_id(value)
                    .map(Selector::unix_uid)
                    .ok_or_else(|| refused(kind, key, value, "uid must be a decimal u32")),
                "gid" => parse_id(value)
                    .map(Selector::unix_gid)
                    .ok_or_else(|| refused(kind, key, value, "gid must be a decimal u32")),
                "path" => Selector::unix_path(value),
                "sha256" => Selector::unix_sha256(value),
                _ => Err(SelectorError::UnknownKey {
                    kind: "unix",
                    key: key.to_owned(),
                    known: UNIX_KEYS,
                }),
            },
            "k8s" => match key {
                "ns" => Selector::k8s_namespace(value),
                "sa" => Selector::k8s_service_account(value),
                "pod-name" => Selector::k8s_pod_name(value),
                "node-name" => Selector::k8s_node_name(value),
                "container-name" => Selector::k8s_container_name(value),
                "pod-uid" => value
                    .parse()
                    .map(|uid| Selector::k8s_pod_uid(&uid))
                    .map_err(|_| refused(kind, key, value, "pod uid must be a lowercase UUID")),
                "container-image" => Selector::k8s_container_image(value),
                "pod-label" => {
                    let (k, v) = value
                        .rsplit_once(':')
                        .ok_or_else(|| refused(kind, key, value, "pod-label takes KEY:VALUE"))?;
                    Selector::k8s_pod_label(k, v)
                }
                _ => Err(SelectorError::UnknownKey {
                    kind: "k8s",
                    key: key.to_owned(),
                    known: K8S_KEYS,
                }),
            },
            other => Err(SelectorError::UnknownType(other.to_owned())),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::UnixUid(v) => write!(f, "unix:uid:{v}"),
            Repr::UnixGid(v) => write!(f, "unix:gid:{v}"),
            Repr::UnixPath(v) => write!(f, "unix:path:{v}"),
            Repr::UnixSha256(v) => write!(f, "unix:sha256:{v}"),
            Repr::K8sNamespace(v) => write!(f, "k8s:ns:{v}"),
            Repr::K8sServiceAccount(v) => write!(f, "k8s:sa:{v}"),
            Repr::K8sPodLabel(k, v) => write!(f, "k8s:pod-label:{k}:{v}"),
            Repr::K8sPodUid(v) => write!(f, "k8s:pod-uid:{v}"),
            Repr::K8sPodName(v) => write!(f, "k8s:pod-name:{v}"),
            Repr::K8sContainerName(v) => write!(f, "k8s:container-name:{v}"),
            Repr::K8sContainerImage(v) => write!(f, "k8s:container-image:{v}"),
            Repr::K8sNodeName(v) => write!(f, "k8s:node-name:{v}"),
        }
    }
}

fn is_sha256_hex(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_id(v: &str) -> Option<u32> {
    // Canonical decimal only: "007" or "+7" would not compare equal as strings.
    if v.starts_with('0') && v.len() > 1 {
        return None;
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// RFC 1123 label (namespaces, container names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain (pod, node, service account names): dot-separated labels, ≤ 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A Kubernetes object UID as the API server writes it: lowercase 8-4-4-4-12 hex, the rule
/// of [`PodUid`] (node UIDs have the same form).
pub fn is_uuid(s: &str) -> bool {
    s.parse::<PodUid>().is_ok()
}

/// Label value: empty, or ≤ 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

/// Label key: optional DNS-subdomain prefix and `/`, then a name like a non-empty label value.
pub fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        for s in [
            "unix:uid:0",
            "unix:uid:1000",
            "unix:gid:4294967295",
            "unix:path:/usr/bin/curl",
            "unix:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "k8s:ns:default",
            "k8s:sa:web",
            "k8s:pod-label:app.kubernetes.io/name:web",
            "k8s:pod-label:tier:",
            "k8s:pod-uid:0f8fad5b-d9cb-469f-a165-70867728950e",
            "k8s:pod-name:web-7d9f",
            "k8s:container-name:app",
            "k8s:container-image:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "k8s:node-name:node-a",
        ] {
            let sel: Selector = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.to_string(), s);
        }
    }

    #[test]
    fn constructors_check_like_parsing() {
        assert!(Selector::k8s_node_name("").is_err());
        assert!(Selector::k8s_container_image("nginx:latest").is_err());
        assert!(Selector::k8s_container_image("sha256:ABC").is_err());
        assert!(Selector::unix_path("").is_err());
        assert!(Selector::k8s_pod_label("app", "web/x").is_err());
        let uid = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        for (built, text) in [
            (Selector::k8s_node_name("node-a"), "k8s:node-name:node-a"),
            (Selector::k8s_pod_label("tier", ""), "k8s:pod-label:tier:"),
            (
                Ok(Selector::k8s_pod_uid(&uid)),
                "k8s:pod-uid:0f8fad5b-d9cb-469f-a165-70867728950e",
            ),
            (Ok(Selector::unix_gid(27)), "unix:gid:27"),
        ] {
            assert_eq!(built, text.parse::<Selector>(), "{text}");
        }
        // A refused value reports the selector as written.
        assert_eq!(
            Selector::k8s_namespace("Default"),
            "k8s:ns:Default".parse::<Selector>()
        );
    }

    #[test]
    fn refuses_bad_selectors() {
        for s in [
            "",
            "uid:1000",
            "unix:uid",
            "unix:uid:",
            "unix:uid:-1",
            "unix:uid:007",
            "unix:uid:4294967296",
            "unix:user:root",
            "unix:path:relative/bin",
            "unix:path:/usr/../bin/sh",
            "unix:sha256:ABCDEF",
            "k8s:ns:Default",
            "k8s:ns:a_b",
            "k8s:pod-uid:not-a-uid",
            "k8s:container-image:nginx:latest",
            "k8s:pod-label:app",
            "k8s:pod-label:-bad:web",
            "k8s:pod-label:app:web/x",
            "docker:label:x",
            "k8s:secret:x",
        ] {
            assert!(s.parse::<Selector>().is_err(), "{s:?} should be refused");
        }
    }
}
