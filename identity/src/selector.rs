//! Selectors: the facts an entry requires of a workload (DESIGN.md §3.2 W5,
//! §3.3).
//!
//! A selector is written `TYPE:KEY:VALUE` (`unix:uid:1000`,
//! `k8s:pod-label:app:web`). It is parsed once, at the edge, into
//! [`Selector`]; an instance is always valid and prints back in canonical
//! form, so stored selectors compare by string.

use std::fmt;
use std::str::FromStr;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `unix:uid:N`: the caller's effective uid.
    UnixUid(u32),
    /// `unix:gid:N`: the caller's effective gid.
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
    K8sPodUid(String),
    /// `k8s:pod-name:NAME`.
    K8sPodName(String),
    /// `k8s:container-name:NAME`: the calling container's name.
    K8sContainerName(String),
    /// `k8s:container-image:DIGEST`: matched on the image digest from the
    /// container status `imageID` (`sha256:<hex>`), never on a mutable tag.
    K8sContainerImage(String),
    /// `k8s:node-name:NAME`.
    K8sNodeName(String),
}

const UNIX_KEYS: &str = "uid, gid, path, sha256";
const K8S_KEYS: &str =
    "ns, sa, pod-label, pod-uid, pod-name, container-name, container-image, node-name";

impl Selector {
    /// `unix` or `k8s`.
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::UnixUid(_)
            | Selector::UnixGid(_)
            | Selector::UnixPath(_)
            | Selector::UnixSha256(_) => "unix",
            _ => "k8s",
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| SelectorError::Value {
            selector: s.to_owned(),
            reason,
        };
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
                    .map(Selector::UnixUid)
                    .ok_or(bad("uid must be a decimal u32")),
                "gid" => parse_id(value)
                    .map(Selector::UnixGid)
                    .ok_or(bad("gid must be a decimal u32")),
                "path" => {
                    if !value.starts_with('/') || value.contains('\0') {
                        return Err(bad("path must be absolute"));
                    }
                    if value.split('/').any(|seg| seg == "." || seg == "..") {
                        return Err(bad("path must not contain . or .. segments"));
                    }
                    Ok(Selector::UnixPath(value.to_owned()))
                }
                "sha256" => {
                    if value.len() == 64
                        && value
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    {
                        Ok(Selector::UnixSha256(value.to_owned()))
                    } else {
                        Err(bad("sha256 must be 64 lowercase hex digits"))
                    }
                }
                _ => Err(SelectorError::UnknownKey {
                    kind: "unix",
                    key: key.to_owned(),
                    known: UNIX_KEYS,
                }),
            },
            "k8s" => match key {
                "ns" => dns_label(value)
                    .map(Selector::K8sNamespace)
                    .ok_or(bad("namespace must be a DNS-1123 label")),
                "sa" => dns_subdomain(value)
                    .map(Selector::K8sServiceAccount)
                    .ok_or(bad("service account must be a DNS-1123 subdomain")),
                "pod-name" => dns_subdomain(value)
                    .map(Selector::K8sPodName)
                    .ok_or(bad("pod name must be a DNS-1123 subdomain")),
                "node-name" => dns_subdomain(value)
                    .map(Selector::K8sNodeName)
                    .ok_or(bad("node name must be a DNS-1123 subdomain")),
                "container-name" => dns_label(value)
                    .map(Selector::K8sContainerName)
                    .ok_or(bad("container name must be a DNS-1123 label")),
                "pod-uid" => {
                    if is_uuid(value) {
                        Ok(Selector::K8sPodUid(value.to_owned()))
                    } else {
                        Err(bad("pod uid must be a lowercase UUID"))
                    }
                }
                "container-image" => {
                    let hex = value.strip_prefix("sha256:").ok_or(bad(
                        "container image must be a digest sha256:<64 hex> (tags are mutable)",
                    ))?;
                    if hex.len() == 64
                        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    {
                        Ok(Selector::K8sContainerImage(value.to_owned()))
                    } else {
                        Err(bad(
                            "container image digest must be sha256:<64 lowercase hex>",
                        ))
                    }
                }
                "pod-label" => {
                    let (k, v) = value
                        .rsplit_once(':')
                        .ok_or(bad("pod-label takes KEY:VALUE"))?;
                    if !is_label_key(k) {
                        return Err(bad("label key is not a valid Kubernetes label key"));
                    }
                    if !is_label_value(v) {
                        return Err(bad("label value is not a valid Kubernetes label value"));
                    }
                    Ok(Selector::K8sPodLabel(k.to_owned(), v.to_owned()))
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
        match self {
            Selector::UnixUid(v) => write!(f, "unix:uid:{v}"),
            Selector::UnixGid(v) => write!(f, "unix:gid:{v}"),
            Selector::UnixPath(v) => write!(f, "unix:path:{v}"),
            Selector::UnixSha256(v) => write!(f, "unix:sha256:{v}"),
            Selector::K8sNamespace(v) => write!(f, "k8s:ns:{v}"),
            Selector::K8sServiceAccount(v) => write!(f, "k8s:sa:{v}"),
            Selector::K8sPodLabel(k, v) => write!(f, "k8s:pod-label:{k}:{v}"),
            Selector::K8sPodUid(v) => write!(f, "k8s:pod-uid:{v}"),
            Selector::K8sPodName(v) => write!(f, "k8s:pod-name:{v}"),
            Selector::K8sContainerName(v) => write!(f, "k8s:container-name:{v}"),
            Selector::K8sContainerImage(v) => write!(f, "k8s:container-image:{v}"),
            Selector::K8sNodeName(v) => write!(f, "k8s:node-name:{v}"),
        }
    }
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

/// A Kubernetes UID as the API server writes it: lowercase 8-4-4-4-12 hex.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
}

fn dns_label(s: &str) -> Option<String> {
    is_dns_label(s).then(|| s.to_owned())
}

fn dns_subdomain(s: &str) -> Option<String> {
    is_dns_subdomain(s).then(|| s.to_owned())
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
