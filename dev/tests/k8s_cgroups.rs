//! "Container" processes land in real cgroups named like the kubelet names
//! them (docs/architecture.md, "Workload attestation" W1, "Testing"), and go away with their handles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use k8s_openapi::api::core::v1::Pod;

use sworn_dev::k8s::{CgroupStyle, ControlPlane, Kubelet, PodParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_processes_run_in_kubelet_style_cgroups() {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    let mut params = PodParams::new("team-c", "worker", "worker-sa", "node-1");
    params.init_containers = vec!["setup".to_owned()];
    let mut pod = kubelet.create_pod_object(&params).await.unwrap();
    let pods = kube::Api::<Pod>::namespaced(cp.client(), "team-c");

    // Pending with the init container running, as a kubelet reports it.
    kubelet.set_init_running(&pod, "setup").await.unwrap();
    let status = pods.get("worker").await.unwrap().status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let init = &status.init_container_statuses.unwrap()[0];
    assert!(init.state.as_ref().unwrap().running.is_some());
    assert_eq!(
        init.container_id.clone(),
        Some(pod.container("setup").unwrap().runtime_id())
    );
    let app_status = &status.container_statuses.unwrap()[0];
    assert!(app_status.state.as_ref().unwrap().waiting.is_some());

    // Running, then with an ephemeral container added and running.
    kubelet.set_running(&pod).await.unwrap();
    let debug = kubelet
        .add_ephemeral_container(&mut pod, "debug")
        .await
        .unwrap();
    let live = pods.get("worker").await.unwrap();
    assert_eq!(
        live.spec.unwrap().ephemeral_containers.unwrap()[0].name,
        "debug"
    );
    let status = live.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let eph = &status.ephemeral_container_statuses.unwrap()[0];
    assert_eq!(eph.container_id.clone(), Some(debug.runtime_id()));
    assert!(eph.state.as_ref().unwrap().running.is_some());
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    let app_status = &status.container_statuses.unwrap()[0];
    assert!(app_status.state.as_ref().unwrap().running.is_some());
    assert!(
        app_status
            .image_id
            .starts_with("registry.invalid/sworn/test@sha256:")
    );
    let app = pod.container("app").unwrap().clone();
    let root = kubelet
        .cgroup_root()
        .cgroup_path()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(root.starts_with("/sworn-test-"), "{root}");
    let uid = pod.uid.clone();
    let uid_underscored = uid.replace('-', "_");

    // A process that reports its own cgroup: it is there from its first instruction.
    let mut cat = Command::new("cat");
    cat.arg("/proc/self/cgroup");
    let expected = [
        (
            CgroupStyle::Cgroupfs,
            &app,
            format!(
                "0::{root}/kubepods/besteffort/pod{uid}/{}",
                app.container_id
            ),
        ),
        (
            CgroupStyle::Systemd,
            &app,
            format!(
                "0::{root}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_underscored}.slice/cri-containerd-{}.scope",
                app.container_id
            ),
        ),
        (
            CgroupStyle::Cgroupfs,
            &debug,
            format!(
                "0::{root}/kubepods/besteffort/pod{uid}/{}",
                debug.container_id
            ),
        ),
    ];
    for (style, container, line) in expected {
        let process = kubelet
            .start_container_process(&pod, &container.name, &cat, style)
            .unwrap();
        let output = process.wait_with_output().await.unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            stdout.lines().any(|l| l == line),
            "{style:?}: expected {line} in\n{stdout}"
        );
    }

    // A long-running process, observed from outside through /proc/<pid>/cgroup.
    let mut sleep = Command::new("sleep");
    sleep.arg("300");
    let process = kubelet
        .start_container_process(&pod, "app", &sleep, CgroupStyle::Systemd)
        .unwrap();
    let pid = process.pid();
    let want = format!("0::{}", process.cgroup_path().display());
    wait_exec(pid, "sleep").await;
    let seen = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        seen.lines().any(|l| l == want),
        "expected {want} in\n{seen}"
    );
    assert_eq!(
        process.cgroup().pids().unwrap(),
        vec![i32::try_from(pid).unwrap()]
    );
    let dir = process.cgroup().fs_path.clone();
    drop(process);
    assert!(
        !common::alive(pid),
        "the container process is killed on drop"
    );
    assert!(!dir.exists(), "the container cgroup is removed on drop");

    // Dropping the kubelet removes the whole per-run cgroup tree, even with a
    // process still inside.
    let process = kubelet
        .start_container_process(&pod, "app", &sleep, CgroupStyle::Cgroupfs)
        .unwrap();
    let pid = process.pid();
    wait_exec(pid, "sleep").await;
    std::mem::forget(process);
    let root_dir = kubelet.cgroup_root().fs_path();
    assert!(root_dir.exists());
    drop(kubelet);
    assert!(!root_dir.exists(), "the per-run cgroup root is removed");
    // Killed by the cgroup teardown; this test process is its parent, so it
    // lingers as a zombie, which `alive` treats as gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while common::alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!common::alive(pid));
}

/// Waits until the wrapper (which joins the cgroup first) has exec'd `comm`.
async fn wait_exec(pid: u32, comm: &str) {
    for _ in 0..250 {
        let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        if now.trim() == comm {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("process {pid} never exec'd {comm}");
}
