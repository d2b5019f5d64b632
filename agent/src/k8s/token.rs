//! W3, possession: the pod's projected service-account token for the
//! workload audience, read from the kubelet's pod directory (docs/architecture.md, "Workload attestation").
//!
//! Invariants: exactly one projected volume in the pod spec carries a
//! `serviceAccountToken` source with our audience, and a container mounts it
//! (the kubelet does not populate unused volumes). The file is read for the
//! *kernel-derived* pod UID, strictly beneath that volume's directory: the
//! volume name must be a DNS-1123 label (as the API server requires), the
//! kubelet's `..data` links resolve inside it; anything that escapes is
//! refused. Tokens are capped at 16 KiB and never logged.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// Largest token accepted.
pub const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// Why the pod's token could not be had. Messages tell the operator what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No projected volume with our audience.
    #[error(
        "pod has no projected serviceAccountToken volume with audience {0:?}; add one and mount it"
    )]
    NoVolume(String),
    /// More than one.
    #[error("pod has {count} projected token volumes with audience {audience:?}; keep exactly one")]
    SeveralVolumes {
        /// How many.
        count: usize,
        /// Ours.
        audience: String,
    },
    /// Declared but not mounted by any container.
    #[error(
        "token volume {0:?} is not mounted by any container, so the kubelet leaves it empty; mount it"
    )]
    NotMounted(String),
    /// The file is missing or unreadable.
    #[error("token file for volume {volume:?} is missing or unreadable: {reason}")]
    Unreadable {
        /// Volume.
        volume: String,
        /// Why.
        reason: String,
    },
    /// The path resolves outside the volume.
    #[error("token path escapes volume {0:?}")]
    Escapes(String),
    /// Too large or not text.
    #[error("token in volume {0:?} is not a plausible token")]
    Malformed(String),
}

/// The volume and file inside it that hold the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// Volume name.
    pub volume: String,
    /// Path inside the volume.
    pub path: String,
}

/// Finds the one mounted projected token volume for `audience`.
pub fn token_source(pod: &Pod, audience: &str) -> Result<TokenSource, TokenError> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| TokenError::NoVolume(audience.to_owned()))?;
    let mut found = Vec::new();
    for v in spec.volumes.iter().flatten() {
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(t) = &src.service_account_token
                && t.audience.as_deref() == Some(audience)
            {
                found.push(TokenSource {
                    volume: v.name.clone(),
                    path: t.path.clone(),
                });
            }
        }
    }
    let source = match found.len() {
        0 => return Err(TokenError::NoVolume(audience.to_owned())),
        1 => found.remove(0),
        count => {
            return Err(TokenError::SeveralVolumes {
                count,
                audience: audience.to_owned(),
            });
        }
    };
    let mounted = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .flat_map(|c| c.volume_mounts.iter().flatten()),
        )
        .any(|m| m.name == source.volume);
    if !mounted {
        return Err(TokenError::NotMounted(source.volume));
    }
    Ok(source)
}

/// `<kubelet_root>/pods/<uid>/volumes/kubernetes.io~projected/<volume>`.
pub fn volume_dir(kubelet_root: &Path, pod_uid: &str, volume: &str) -> PathBuf {
    kubelet_root
        .join("pods")
        .join(pod_uid)
        .join("volumes")
        .join("kubernetes.io~projected")
        .join(volume)
}

/// Reads the token, resolving strictly beneath the volume directory.
pub fn read_token(
    kubelet_root: &Path,
    pod_uid: &str,
    source: &TokenSource,
) -> Result<String, TokenError> {
    let unreadable = |reason: String| TokenError::Unreadable {
        volume: source.volume.clone(),
        reason,
    };
    // The volume name and the path come from the pod spec. The API server only admits a
    // DNS-1123 label as a volume name; anything else (`..`, a `/`) would move the volume
    // directory itself, so it is refused here too. The path: plain relative segments only.
    if !sworn_identity::selector::is_dns_label(&source.volume) {
        return Err(TokenError::Escapes(source.volume.clone()));
    }
    let rel = Path::new(&source.path);
    if source.path.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(TokenError::Escapes(source.volume.clone()));
    }
    let dir = volume_dir(kubelet_root, pod_uid, &source.volume);
    let dir = dir.canonicalize().map_err(|e| unreadable(e.to_string()))?;
    let file = dir
        .join(rel)
        .canonicalize()
        .map_err(|e| unreadable(e.to_string()))?;
    if !file.starts_with(&dir) {
        return Err(TokenError::Escapes(source.volume.clone()));
    }
    let mut f = std::fs::File::open(&file).map_err(|e| unreadable(e.to_string()))?;
    let mut text = String::new();
    (&mut f)
        .take(MAX_TOKEN_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|_| TokenError::Malformed(source.volume.clone()))?;
    let token = text.trim();
    if token.is_empty()
        || text.len() as u64 > MAX_TOKEN_BYTES
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(TokenError::Malformed(source.volume.clone()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(volumes: serde_json::Value, mounts: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "app", "volumeMounts": mounts}], "volumes": volumes}
        }))
        .unwrap()
    }

    fn token_vol(name: &str, aud: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "projected": {"sources": [{"serviceAccountToken": {"audience": aud, "path": "token"}}]}})
    }

    #[test]
    fn exactly_one_mounted_volume_with_our_audience() {
        let ok = pod(
            serde_json::json!([token_vol("t", "sworn")]),
            serde_json::json!([{"name": "t", "mountPath": "/x"}]),
        );
        assert_eq!(token_source(&ok, "sworn").unwrap().volume, "t");
        let none = pod(
            serde_json::json!([token_vol("t", "other")]),
            serde_json::json!([{"name": "t", "mountPath": "/x"}]),
        );
        assert!(matches!(
            token_source(&none, "sworn"),
            Err(TokenError::NoVolume(_))
        ));
        let two = pod(
            serde_json::json!([token_vol("a", "sworn"), token_vol("b", "sworn")]),
            serde_json::json!([{"name": "a", "mountPath": "/x"}]),
        );
        assert!(matches!(
            token_source(&two, "sworn"),
            Err(TokenError::SeveralVolumes { count: 2, .. })
        ));
        let unmounted = pod(
            serde_json::json!([token_vol("t", "sworn")]),
            serde_json::json!([]),
        );
        assert!(matches!(
            token_source(&unmounted, "sworn"),
            Err(TokenError::NotMounted(_))
        ));
    }

    #[test]
    fn reads_through_kubelet_links_and_refuses_escapes() {
        let root = tempfile::tempdir().unwrap();
        let dir = volume_dir(root.path(), "uid-1", "t");
        std::fs::create_dir_all(dir.join("..2026_01_01")).unwrap();
        std::fs::write(dir.join("..2026_01_01/token"), "eyJhbGciOi.x.y\n").unwrap();
        std::os::unix::fs::symlink("..2026_01_01", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
        let src = TokenSource {
            volume: "t".into(),
            path: "token".into(),
        };
        assert_eq!(
            read_token(root.path(), "uid-1", &src).unwrap(),
            "eyJhbGciOi.x.y"
        );

        // A link pointing outside the volume is refused.
        std::fs::write(root.path().join("stolen"), "secret").unwrap();
        std::os::unix::fs::symlink(root.path().join("stolen"), dir.join("evil")).unwrap();
        let evil = TokenSource {
            volume: "t".into(),
            path: "evil".into(),
        };
        assert_eq!(
            read_token(root.path(), "uid-1", &evil),
            Err(TokenError::Escapes("t".into()))
        );
        let dotdot = TokenSource {
            volume: "t".into(),
            path: "../../x".into(),
        };
        assert_eq!(
            read_token(root.path(), "uid-1", &dotdot),
            Err(TokenError::Escapes("t".into()))
        );
        // A volume name that is no DNS-1123 label would move the volume directory: into
        // another pod's volume, or a sibling volume's link.
        let other_pod = volume_dir(root.path(), "uid-2", "t");
        std::fs::create_dir_all(&other_pod).unwrap();
        std::fs::write(other_pod.join("token"), "other.pod.token").unwrap();
        for volume in [
            "../../../uid-2/volumes/kubernetes.io~projected/t",
            "t/..data",
            "..",
        ] {
            let moved = TokenSource {
                volume: volume.into(),
                path: "token".into(),
            };
            assert_eq!(
                read_token(root.path(), "uid-1", &moved),
                Err(TokenError::Escapes(volume.into())),
                "{volume}"
            );
        }
        // Oversized.
        std::fs::write(dir.join("big"), "a".repeat(20_000)).unwrap();
        let big = TokenSource {
            volume: "t".into(),
            path: "big".into(),
        };
        assert_eq!(
            read_token(root.path(), "uid-1", &big),
            Err(TokenError::Malformed("t".into()))
        );
        // Missing.
        let missing = TokenSource {
            volume: "t".into(),
            path: "nope".into(),
        };
        assert!(matches!(
            read_token(root.path(), "uid-1", &missing),
            Err(TokenError::Unreadable { .. })
        ));
    }
}
