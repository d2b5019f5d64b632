//! Fuzz target for the agent's W3 token resolution: `token_source` (which projected volume
//! of a pod spec holds the workload-audience token) and `read_token` (the file beneath
//! `<kubelet_root>/pods/<uid>/volumes/kubernetes.io~projected/<volume>`),
//! docs/architecture.md, "Workload attestation".
//!
//! Input: lines of a pod spec, `vol=NAME|AUDIENCE|PATH` (a projected token volume),
//! `mount=NAME` (a container mounts it), `init=NAME` (an init container does), and
//! `uid=a`, `uid=b` or `uid=c` (whose pod is calling; default a). The kubelet root is a
//! real directory built once: pod a has volumes `t` (the kubelet's `..data` layout, plus
//! links that point outside the volume, at a sibling volume, at another pod and at
//! themselves) and `other`; pod b has `t`; pod c has none. Every token file inside a
//! volume holds `tok.<pod>.<volume>.<file>`; files outside the volumes hold anything else.
//!
//! Invariants:
//! - a source is found only if exactly one volume has the audience and a container or
//!   init container mounts it;
//! - a token is read only from beneath the calling pod's own directory of the volume the
//!   source names (its text starts `tok.<pod>.<volume>.`), so never outside the kubelet
//!   root, another pod's or another volume's;
//! - a resolved source names a DNS-1123 label volume and a path of plain segments only
//!   (no `..`, `.`, or root).
#![no_main]

use std::path::{Component, Path};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{
    Container, Pod, PodSpec, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use libfuzzer_sys::fuzz_target;
use sworn_agent::k8s::token::{read_token, token_source, volume_dir};

const AUDIENCE: &str = "sworn";
const PODS: [(&str, &str); 3] = [
    ("a", "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b"),
    ("b", "1d5b2b7f-4c6e-4a8f-8b3c-2d3e4f5a6b7c"),
    ("c", "2e6c3c80-5d7f-4b90-9c4d-3e4f5a6b7c8d"),
];

struct Fixture {
    // A static is never dropped: run.sh gives each run a TMPDIR of its own and removes it.
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn link(target: impl AsRef<Path>, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("symlink");
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("kubelet");
        write(&dir.path().join("outside"), "outside.the.kubelet.root");
        write(&root.join("stolen"), "inside.the.root.but.no.volume");
        let t = volume_dir(&root, PODS[0].1, "t");
        write(&t.join("..2026_01_01/token"), "tok.a.t.token\n");
        write(&t.join("..2026_01_01/sub/nested"), "tok.a.t.nested");
        link("..2026_01_01", &t.join("..data"));
        link("..data/token", &t.join("token"));
        link("..data/sub", &t.join("sub"));
        link(dir.path().join("outside"), &t.join("abs"));
        link(root.join("stolen"), &t.join("stolen"));
        link("../other/token", &t.join("sibling"));
        link(
            volume_dir(&root, PODS[1].1, "t").join("token"),
            &t.join("pod_b"),
        );
        link("../../../../../../outside", &t.join("up"));
        link("loop", &t.join("loop"));
        let other = volume_dir(&root, PODS[0].1, "other");
        write(&other.join("token"), "tok.a.other.token");
        write(
            &volume_dir(&root, PODS[1].1, "t").join("token"),
            "tok.b.t.token",
        );
        std::fs::create_dir_all(root.join("pods").join(PODS[2].1)).expect("mkdir");
        Fixture { _dir: dir, root }
    })
}

fn volume(name: &str, audience: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(audience.into()),
                    path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: "/var/run/secrets/tokens".into(),
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mut volumes, mut mounts, mut init_mounts, mut pod) = (vec![], vec![], vec![], PODS[0]);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("vol", spec)) => {
                let mut f = spec.splitn(3, '|');
                let (Some(name), Some(aud), Some(path)) = (f.next(), f.next(), f.next()) else {
                    return;
                };
                volumes.push(volume(name, aud, path));
            }
            Some(("mount", name)) => mounts.push(mount(name)),
            Some(("init", name)) => init_mounts.push(mount(name)),
            Some(("uid", tag)) => match PODS.iter().find(|(t, _)| *t == tag) {
                Some(p) => pod = *p,
                None => return,
            },
            _ => return,
        }
    }
    let ours: Vec<&Volume> = volumes
        .iter()
        .filter(|v| {
            let sources = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
            sources
                .filter_map(|s| s.service_account_token.as_ref())
                .any(|t| t.audience.as_deref() == Some(AUDIENCE))
        })
        .collect();
    let spec = PodSpec {
        volumes: Some(volumes.clone()),
        containers: vec![Container {
            name: "app".into(),
            volume_mounts: Some(mounts.clone()),
            ..Default::default()
        }],
        init_containers: Some(vec![Container {
            name: "init".into(),
            volume_mounts: Some(init_mounts.clone()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod_object = Pod {
        spec: Some(spec),
        ..Default::default()
    };
    let Ok(source) = token_source(&pod_object, AUDIENCE) else {
        return;
    };
    assert_eq!(ours.len(), 1, "a source from {} volumes", ours.len());
    assert_eq!(ours[0].name, source.volume);
    let mounted = mounts
        .iter()
        .chain(&init_mounts)
        .any(|m| m.name == source.volume);
    assert!(mounted, "unmounted volume {:?} chosen", source.volume);

    let fixture = fixture();
    let Ok(token) = read_token(&fixture.root, pod.1, &source) else {
        return;
    };
    let expected = format!("tok.{}.{}.", pod.0, source.volume);
    assert!(
        token.starts_with(&expected),
        "read {token:?} for pod {} through {source:?}",
        pod.0
    );
    assert!(sworn_identity::selector::is_dns_label(&source.volume));
    let plain = Path::new(&source.path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    assert!(plain, "{source:?}");
});
