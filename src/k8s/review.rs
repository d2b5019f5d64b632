//! TokenReview: ask the API server whether a token is valid for an audience,
//! and read the bound-object claims it reports back as extras.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use sworn_identity::selector::{is_dns_label, is_dns_subdomain, is_uuid};

use super::{K8sError, classify};

const EXTRA: &str = "authentication.kubernetes.io/";

/// A reviewed token's facts. Every name is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// Namespace from `system:serviceaccount:<ns>:<sa>`.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Extra `pod-name`.
    pub pod_name: Option<String>,
    /// Extra `pod-uid`.
    pub pod_uid: Option<String>,
    /// Extra `node-name`.
    pub node_name: Option<String>,
    /// Extra `node-uid`.
    pub node_uid: Option<String>,
    /// Extra `credential-id` (`JTI=<jti>`).
    pub credential_id: Option<String>,
}

/// Why a token did not pass review.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The API server could not answer.
    #[error(transparent)]
    Api(#[from] K8sError),
    /// Not authenticated (bad signature, expired, bound object gone, wrong audience).
    #[error("token not authenticated: {0}")]
    NotAuthenticated(String),
    /// Authenticated, but not for our audience.
    #[error("token audiences {got:?} do not include {want:?}")]
    Audience {
        /// Returned.
        got: Vec<String>,
        /// Ours.
        want: String,
    },
    /// The username is not a service account.
    #[error("token user {0:?} is not a service account")]
    NotServiceAccount(String),
    /// An extra is malformed.
    #[error("token extra {key} is malformed: {value:?}")]
    BadExtra {
        /// Key.
        key: &'static str,
        /// Value.
        value: String,
    },
}

fn extra(
    extras: &std::collections::BTreeMap<String, Vec<String>>,
    key: &'static str,
    valid: fn(&str) -> bool,
) -> Result<Option<String>, ReviewError> {
    match extras.get(&format!("{EXTRA}{key}")).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([v]) if valid(v) => Ok(Some(v.clone())),
        Some(vs) => Err(ReviewError::BadExtra {
            key,
            value: vs.join(","),
        }),
    }
}

/// Reviews `token` for `audience`.
pub async fn review(
    client: &kube::Client,
    token: &str,
    audience: &str,
) -> Result<Reviewed, ReviewError> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let tr = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: Some(vec![audience.to_owned()]),
        },
        ..Default::default()
    };
    let out = api
        .create(&PostParams::default(), &tr)
        .await
        .map_err(classify)?;
    let status = out.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(ReviewError::NotAuthenticated(
            status
                .error
                .unwrap_or_else(|| "not authenticated".to_owned()),
        ));
    }
    let audiences = status.audiences.unwrap_or_default();
    if !audiences.iter().any(|a| a == audience) {
        return Err(ReviewError::Audience {
            got: audiences,
            want: audience.to_owned(),
        });
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let (namespace, service_account) = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| is_dns_label(ns) && is_dns_subdomain(sa))
        .map(|(ns, sa)| (ns.to_owned(), sa.to_owned()))
        .ok_or_else(|| ReviewError::NotServiceAccount(username.clone()))?;
    let extras = user.extra.unwrap_or_default();
    Ok(Reviewed {
        namespace,
        service_account,
        pod_name: extra(&extras, "pod-name", is_dns_subdomain)?,
        pod_uid: extra(&extras, "pod-uid", is_uuid)?,
        node_name: extra(&extras, "node-name", is_dns_subdomain)?,
        node_uid: extra(&extras, "node-uid", is_uuid)?,
        credential_id: extra(&extras, "credential-id", |v| {
            !v.is_empty() && v.len() <= 256 && v.is_ascii()
        })?,
    })
}
