//! What the real API server does with tokens it would never issue (docs/architecture.md
//! "Workload attestation" W4, "Testing"). These tokens are signed by the harness with the API server's
//! own service-account key; the test says so in every name.
//!
//! The finding the server's W4 checks rely on: TokenReview validates the
//! signature, issuer, expiry and that the bound pod exists with that UID, but
//! NOT that the token's node or service account agree with the pod. sworn's
//! server must compare them with its own read of the Pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{authenticated, extra, review};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::Api;
use sworn_dev::k8s::{ControlPlane, Kubelet, ObjectRef, PodParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_with_mismatching_node_or_service_account_still_authenticate() {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    let pod = kubelet
        .create_pod(&PodParams::new("ns", "p", "sa", "node-1"))
        .await
        .unwrap();
    kubelet.create_node("node-2").await.unwrap();
    kubelet.create_service_account("ns", "other").await.unwrap();
    let node2 = Api::<Node>::all(cp.client()).get("node-2").await.unwrap();
    let other = Api::<ServiceAccount>::namespaced(cp.client(), "ns")
        .get("other")
        .await
        .unwrap();
    let base = kubelet.forge_claims_for_pod(&pod, "sworn").await.unwrap();

    let mut wrong_node = base.clone();
    wrong_node.node = Some(ObjectRef {
        name: "node-2".into(),
        uid: node2.metadata.uid.clone().unwrap(),
    });
    let status = review(
        kubelet.client(),
        &cp.forge_token_with_apiserver_key(&wrong_node).unwrap(),
        "sworn",
    )
    .await;
    assert!(authenticated(&status), "{status:?}");
    assert_eq!(
        extra(&status, "authentication.kubernetes.io/node-name").as_deref(),
        Some("node-2"),
        "the review reports the token's node, not the pod's"
    );

    let mut wrong_sa = base.clone();
    wrong_sa.service_account = ObjectRef {
        name: "other".into(),
        uid: other.metadata.uid.clone().unwrap(),
    };
    let status = review(
        kubelet.client(),
        &cp.forge_token_with_apiserver_key(&wrong_sa).unwrap(),
        "sworn",
    )
    .await;
    assert!(authenticated(&status), "{status:?}");
    assert_eq!(
        status.user.as_ref().unwrap().username.as_deref(),
        Some("system:serviceaccount:ns:other")
    );

    // Controls: what TokenReview does check.
    let mut wrong_pod_uid = base.clone();
    wrong_pod_uid.pod = Some(ObjectRef {
        name: "p".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
    });
    let status = review(
        kubelet.client(),
        &cp.forge_token_with_apiserver_key(&wrong_pod_uid).unwrap(),
        "sworn",
    )
    .await;
    assert!(
        !authenticated(&status),
        "a token bound to another pod UID is refused: {status:?}"
    );

    let mut wrong_issuer = base.clone();
    wrong_issuer.issuer = "https://elsewhere.invalid".into();
    let status = review(
        kubelet.client(),
        &cp.forge_token_with_apiserver_key(&wrong_issuer).unwrap(),
        "sworn",
    )
    .await;
    assert!(
        !authenticated(&status),
        "a token from another issuer is refused: {status:?}"
    );
}
