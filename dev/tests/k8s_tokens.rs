//! Bound service-account tokens against the real kube-apiserver (docs/architecture.md
//! "Workload attestation" W4, "Testing"): what TokenReview reports for a pod's token, that audiences
//! are enforced, that deleting or replacing the pod invalidates the token, and
//! that tokens the API would never issue (expired) are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{authenticated, extra, review};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use sworn_dev::k8s::{ControlPlane, Kubelet, PodParams};

const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
const NODE_UID: &str = "authentication.kubernetes.io/node-uid";

/// The API server may cache a successful authentication for ~10 s.
const INVALIDATION_DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_token_reviews_with_pod_and_node_extras_for_its_audience_only() {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    let pod = kubelet
        .create_pod(&PodParams::new("team-a", "web", "web-sa", "node-1"))
        .await
        .unwrap();

    let token_path = kubelet.token_path(&pod).unwrap();
    assert!(token_path.starts_with(kubelet.kubelet_root().join("pods").join(&pod.uid)));
    assert!(token_path.ends_with("volumes/kubernetes.io~projected/sworn-token/token"));
    let token = std::fs::read_to_string(&token_path).unwrap();

    let status = review(kubelet.client(), &token, "sworn").await;
    assert!(authenticated(&status), "{status:?}");
    assert_eq!(status.audiences.as_deref(), Some(&["sworn".to_owned()][..]));
    let user = status.user.as_ref().unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:team-a:web-sa")
    );
    let node = Api::<Node>::all(cp.client()).get("node-1").await.unwrap();
    assert_eq!(extra(&status, POD_NAME).as_deref(), Some("web"));
    assert_eq!(extra(&status, POD_UID).as_deref(), Some(pod.uid.as_str()));
    assert_eq!(extra(&status, NODE_NAME).as_deref(), Some("node-1"));
    assert_eq!(extra(&status, NODE_UID), node.metadata.uid);

    let other = review(kubelet.client(), &token, "some-other-audience").await;
    assert!(
        !authenticated(&other),
        "a token for `sworn` must not pass for another audience: {other:?}"
    );

    // Forged with the API server's key: first a well-formed, unexpired token
    // (the control: the forge is accepted), then the same claims expired.
    let claims = kubelet.forge_claims_for_pod(&pod, "sworn").await.unwrap();
    let fresh = cp.forge_token_with_apiserver_key(&claims).unwrap();
    let fresh_status = review(kubelet.client(), &fresh, "sworn").await;
    assert!(
        authenticated(&fresh_status),
        "a correctly forged token is accepted: {fresh_status:?}"
    );
    assert_eq!(
        extra(&fresh_status, POD_UID).as_deref(),
        Some(pod.uid.as_str())
    );

    let expired = cp
        .forge_token_with_apiserver_key(&claims.expired(120, 600))
        .unwrap();
    let expired_status = review(kubelet.client(), &expired, "sworn").await;
    assert!(
        !authenticated(&expired_status),
        "an expired token is refused: {expired_status:?}"
    );

    // Refresh at 80% of the lifetime, as the kubelet does: not yet...
    assert!(!kubelet.refresh_token_if_due(&pod).await.unwrap());
    // ...but once the file is 50 minutes old (of 60).
    let old = std::time::SystemTime::now() - Duration::from_secs(50 * 60);
    std::fs::File::options()
        .write(true)
        .open(&token_path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(kubelet.refresh_token_if_due(&pod).await.unwrap());
    let refreshed = std::fs::read_to_string(&token_path).unwrap();
    assert_ne!(refreshed, token);
    assert!(authenticated(
        &review(kubelet.client(), &refreshed, "sworn").await
    ));

    // Like the kubelet, the stand-in leaves a volume no container mounts empty.
    let mut unmounted = PodParams::new("team-a", "batch", "web-sa", "node-1");
    unmounted.token_volume.as_mut().unwrap().mounted = false;
    let batch = kubelet.create_pod(&unmounted).await.unwrap();
    let path = kubelet.token_path(&batch).unwrap();
    assert!(
        !path.exists(),
        "{} written for an unmounted volume",
        path.display()
    );
    assert!(!path.parent().unwrap().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_replacing_the_pod_invalidates_its_token() {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    let params = PodParams::new("team-b", "api", "api-sa", "node-1");

    // Deleted (grace 0).
    let pod = kubelet.create_pod(&params).await.unwrap();
    let token = std::fs::read_to_string(kubelet.token_path(&pod).unwrap()).unwrap();
    assert!(authenticated(
        &review(kubelet.client(), &token, "sworn").await
    ));
    kubelet.delete_pod(&pod).await.unwrap();
    let took = wait_refused(kubelet.client(), &token).await;
    eprintln!("token of a deleted pod refused after {took:?}");
    kubelet.remove_pod_files(&pod).unwrap();
    assert!(!kubelet.kubelet_root().join("pods").join(&pod.uid).exists());

    // Deleted and recreated under the same name: a new UID.
    let first = kubelet.create_pod(&params).await.unwrap();
    let old_token = std::fs::read_to_string(kubelet.token_path(&first).unwrap()).unwrap();
    assert!(authenticated(
        &review(kubelet.client(), &old_token, "sworn").await
    ));
    kubelet.delete_pod(&first).await.unwrap();
    let second = kubelet.create_pod(&params).await.unwrap();
    assert_ne!(first.uid, second.uid);
    let took = wait_refused(kubelet.client(), &old_token).await;
    eprintln!("token of a replaced pod refused after {took:?}");
    let new_token = std::fs::read_to_string(kubelet.token_path(&second).unwrap()).unwrap();
    let status = review(kubelet.client(), &new_token, "sworn").await;
    assert!(authenticated(&status));
    assert_eq!(
        extra(&status, POD_UID).as_deref(),
        Some(second.uid.as_str())
    );
}

/// Polls TokenReview until `token` is refused; fails after the deadline.
async fn wait_refused(client: &kube::Client, token: &str) -> Duration {
    let start = Instant::now();
    loop {
        if !authenticated(&review(client, token, "sworn").await) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < INVALIDATION_DEADLINE,
            "token still authenticated {INVALIDATION_DEADLINE:?} after its pod went away"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
