//! Pod-bound service-account tokens: requested from the TokenRequest API and
//! written in the kubelet's projected-volume layout, or (for tokens the API
//! refuses to issue) described as claims for the harness to sign.

use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Kubelet, KubeletError, PodHandle, api, from_json};
use crate::k8s::projected::write_projected_file;
use crate::k8s::token::{ForgedClaims, ObjectRef, now_secs};

impl Kubelet {
    /// Requests a token bound to the pod (TokenRequest with `boundObjectRef`).
    pub async fn request_token(
        &self,
        pod: &PodHandle,
        audience: &str,
        expiration_seconds: i64,
    ) -> Result<String, KubeletError> {
        let request: TokenRequest = from_json(json!({"spec": {
            "audiences": [audience],
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid},
        }}))?;
        let response = Api::<ServiceAccount>::namespaced(self.client.clone(), &pod.namespace)
            .create_token_request(&pod.service_account, &PostParams::default(), &request)
            .await
            .map_err(api(format!("requesting a token for {}", pod.key())))?;
        response
            .status
            .and_then(|s| s.token)
            .ok_or(KubeletError::EmptyToken)
    }

    /// The directory of the pod's projected volume `volume`.
    pub fn volume_dir(&self, pod: &PodHandle, volume: &str) -> PathBuf {
        self.kubelet_root
            .join("pods")
            .join(&pod.uid)
            .join("volumes")
            .join("kubernetes.io~projected")
            .join(volume)
    }

    /// Where the kubelet would put the pod's token file, if it has a token volume.
    pub fn token_path(&self, pod: &PodHandle) -> Option<PathBuf> {
        pod.token_volume
            .as_ref()
            .map(|v| self.volume_dir(pod, &v.name).join(&v.path))
    }

    /// Requests the pod's token and writes it in the kubelet's layout, if the
    /// token volume is mounted by a container (the kubelet leaves unused
    /// volumes empty). Returns the file written.
    pub async fn write_tokens(&self, pod: &PodHandle) -> Result<Option<PathBuf>, KubeletError> {
        let Some(v) = pod.token_volume.as_ref().filter(|v| v.mounted) else {
            return Ok(None);
        };
        let token = self
            .request_token(pod, &v.audience, v.expiration_seconds)
            .await?;
        let written = write_projected_file(
            &self.volume_dir(pod, &v.name),
            &[(&v.path, token.as_bytes())],
        )?;
        Ok(written.into_iter().next())
    }

    /// Rewrites the pod's token once 80% of its lifetime has passed, as the
    /// kubelet does. Returns whether it wrote a new one.
    pub async fn refresh_token_if_due(&self, pod: &PodHandle) -> Result<bool, KubeletError> {
        let Some(v) = pod.token_volume.as_ref().filter(|v| v.mounted) else {
            return Ok(false);
        };
        let Some(path) = self.token_path(pod) else {
            return Ok(false);
        };
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let refresh_after = std::time::Duration::from_secs(
            u64::try_from(v.expiration_seconds).unwrap_or(600) * 4 / 5,
        );
        if age.is_some_and(|age| age < refresh_after) {
            return Ok(false);
        }
        self.write_tokens(pod).await?;
        tracing::debug!(pod = %pod.key(), "token refreshed");
        Ok(true)
    }

    /// Claims matching what the API server would put in a token bound to
    /// `pod` for `audience` (valid for an hour from now), for
    /// [`ControlPlane::forge_token_with_apiserver_key`](crate::k8s::ControlPlane::forge_token_with_apiserver_key). Reads the service
    /// account's and node's UIDs from the API.
    pub async fn forge_claims_for_pod(
        &self,
        pod: &PodHandle,
        audience: &str,
    ) -> Result<ForgedClaims, KubeletError> {
        let sa = Api::<ServiceAccount>::namespaced(self.client.clone(), &pod.namespace)
            .get(&pod.service_account)
            .await
            .map_err(api(format!(
                "reading service account {}",
                pod.service_account
            )))?;
        let node = Api::<Node>::all(self.client.clone())
            .get(&pod.node_name)
            .await
            .map_err(api(format!("reading node {}", pod.node_name)))?;
        let now = now_secs();
        Ok(ForgedClaims {
            issuer: self.issuer.clone(),
            audiences: vec![audience.to_owned()],
            namespace: pod.namespace.clone(),
            service_account: ObjectRef {
                name: pod.service_account.clone(),
                uid: sa
                    .metadata
                    .uid
                    .ok_or(KubeletError::MissingUid("service account"))?,
            },
            pod: Some(ObjectRef {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            }),
            node: Some(ObjectRef {
                name: pod.node_name.clone(),
                uid: node.metadata.uid.ok_or(KubeletError::MissingUid("node"))?,
            }),
            issued_at: now,
            not_before: now,
            expires_at: now + 3600,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }
}
