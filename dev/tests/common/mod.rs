//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus};
use kube::api::{Api, PostParams};
use serde_json::json;

/// TokenReview of `token` for `audience`, as sworn's server does it.
pub async fn review(client: &kube::Client, token: &str, audience: &str) -> TokenReviewStatus {
    let review: TokenReview =
        serde_json::from_value(json!({"spec": {"token": token, "audiences": [audience]}})).unwrap();
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("token review request")
        .status
        .expect("token review status")
}

pub fn authenticated(status: &TokenReviewStatus) -> bool {
    status.authenticated == Some(true)
}

/// The single value of extra `key` (e.g. `authentication.kubernetes.io/pod-uid`).
pub fn extra(status: &TokenReviewStatus, key: &str) -> Option<String> {
    let values = status.user.as_ref()?.extra.as_ref()?.get(key)?;
    assert_eq!(values.len(), 1, "extra {key} has {values:?}");
    values.first().cloned()
}

/// Whether a process with `pid` still exists (zombies count as gone: their
/// parent is this test process, which has reaped them if they were stopped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            state.is_some_and(|c| c != 'Z')
        })
        .unwrap_or(false)
}
