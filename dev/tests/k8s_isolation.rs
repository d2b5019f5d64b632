//! Harnesses are isolated from each other and leave nothing behind, also
//! when the test using them panics (docs/architecture.md, "Testing").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{alive, authenticated, review};
use sworn_dev::k8s::{ControlPlane, Kubelet, PodParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_harnesses_in_parallel_do_not_interfere() {
    let (a, b) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.api_url(), b.api_url());
    assert_ne!(a.dir(), b.dir());
    let (ka, kb) = (Kubelet::new(&a).unwrap(), Kubelet::new(&b).unwrap());
    assert_ne!(
        ka.cgroup_root().cgroup_path(),
        kb.cgroup_root().cgroup_path()
    );
    assert_ne!(ka.kubelet_root(), kb.kubelet_root());

    // The same names in both clusters, created concurrently.
    let params = PodParams::new("shared", "same", "same-sa", "node-1");
    let (pa, pb) = tokio::join!(ka.create_pod(&params), kb.create_pod(&params));
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    assert_ne!(pa.uid, pb.uid);

    // Each cluster accepts only its own tokens (distinct signing keys).
    let ta = std::fs::read_to_string(ka.token_path(&pa).unwrap()).unwrap();
    let tb = std::fs::read_to_string(kb.token_path(&pb).unwrap()).unwrap();
    assert!(authenticated(&review(&a.client(), &ta, "sworn").await));
    assert!(authenticated(&review(&b.client(), &tb, "sworn").await));
    assert!(!authenticated(&review(&a.client(), &tb, "sworn").await));
    assert!(!authenticated(&review(&b.client(), &ta, "sworn").await));

    // Deleting in one leaves the other alone.
    ka.delete_pod(&pa).await.unwrap();
    let still = kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(b.client(), "shared")
        .get("same")
        .await
        .unwrap();
    assert_eq!(still.metadata.uid.as_deref(), Some(pb.uid.as_str()));

    let pids: Vec<u32> = a.pids().into_iter().chain(b.pids()).collect();
    let dirs: Vec<PathBuf> = vec![
        a.dir().to_path_buf(),
        b.dir().to_path_buf(),
        ka.kubelet_root().to_path_buf(),
        kb.kubelet_root().to_path_buf(),
        ka.cgroup_root().fs_path(),
        kb.cgroup_root().fs_path(),
    ];
    assert!(pids.iter().all(|p| alive(*p)));
    drop((ka, kb));
    tokio::join!(a.stop(), b.stop());
    for pid in pids {
        assert!(!alive(pid), "process {pid} still running");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// What the panicking test saw: control-plane pids, its dir (kept), its cgroup root.
type Seen = ([u32; 2], PathBuf, PathBuf);

#[test]
fn a_panicking_test_leaves_nothing_running() {
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    let result = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let cp = ControlPlane::start().await.unwrap();
            let kubelet = Kubelet::new(&cp).unwrap();
            *record.lock().unwrap() = Some((
                cp.pids(),
                cp.dir().to_path_buf(),
                kubelet.cgroup_root().fs_path(),
            ));
            panic!("simulated test failure");
        })
    })
    .join();
    assert!(result.is_err(), "the inner test panicked");
    let (pids, dir, cgroup) = seen.lock().unwrap().clone().expect("the harness started");
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the panic");
    }
    // A failed test keeps its directory, with every process's log, for whoever reads the
    // failure (docs/architecture.md, "Testing"); nothing in it still runs.
    assert!(
        dir.exists(),
        "{} was not kept for inspection",
        dir.display()
    );
    assert!(!cgroup.exists(), "{} survived the panic", cgroup.display());
    std::fs::remove_dir_all(&dir).unwrap();
}
