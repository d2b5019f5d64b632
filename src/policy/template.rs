//! SPIFFE ID templates (`entry create --spiffe-id-template`), docs/architecture.md, "Workload attestation" W5.
//!
//! A template is a SPIFFE ID in which `{placeholder}`s stand for pod facts:
//! `{namespace}`, `{service_account}`, `{pod_name}`, `{pod_uid}`,
//! `{node_name}`, `{label:<key>}`. Invariants (docs/architecture.md, "ID templates"):
//! - pod-controlled values are those whoever creates a pod chooses: its labels, its name
//!   and its service account (any in its namespace). The namespace, the pod UID and the
//!   node name are not (an administrator, the API server and the scheduler decide them);
//! - a pod-controlled value fills a whole path segment, alone: in `{namespace}-{label:app}`
//!   the pairs (`prod-db`, `admin`) and (`prod`, `db-admin`) would render the same ID;
//! - a template that uses a pod-controlled value also contains `{namespace}`, so one
//!   namespace cannot claim another's ID;
//! - placeholders may appear only in the path, never in the trust domain;
//! - every rendered value is a safe path fragment (non-empty, no `/`, not `.`
//!   or `..`, only `[A-Za-z0-9._-]`), and the result must be a valid SPIFFE ID
//!   outside the reserved `/sworn/` prefix. Any failure denies: a bad render
//!   never issues a different ID.

use std::fmt;

use sworn_identity::pod::PodFacts;

/// Why a template was refused at creation or could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without `}` or a stray `}`.
    #[error("template has unbalanced braces")]
    Braces,
    /// A placeholder that does not exist.
    #[error(
        "unknown placeholder {{{0}}}; known: namespace, service_account, pod_name, pod_uid, node_name, label:<key>"
    )]
    UnknownPlaceholder(String),
    /// A pod-controlled value without `{namespace}`.
    #[error(
        "a template using {{pod_name}}, {{service_account}} or {{label:...}} must also contain {{namespace}}, or one namespace could claim another's ID"
    )]
    NeedsNamespace,
    /// A pod-controlled value that does not fill a whole path segment.
    #[error(
        "{{{0}}} is pod-controlled and must fill a whole path segment (`/{{{0}}}/`), or two different pods could render the same ID"
    )]
    SharedSegment(String),
    /// The template is not shaped like a SPIFFE ID of this trust domain.
    #[error("template is not a SPIFFE ID of trust domain {trust_domain}: {reason}")]
    Shape {
        /// Expected trust domain.
        trust_domain: String,
        /// Why.
        reason: String,
    },
    /// A placeholder rendered to an unusable value.
    #[error("placeholder {{{placeholder}}} rendered to an unusable value: {reason}")]
    BadValue {
        /// Which placeholder.
        placeholder: String,
        /// Why.
        reason: &'static str,
    },
    /// The rendered string is not a valid SPIFFE ID.
    #[error("rendered ID is invalid: {0}")]
    Rendered(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Namespace,
    ServiceAccount,
    PodName,
    PodUid,
    NodeName,
    Label(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Namespace => f.write_str("namespace"),
            Var::ServiceAccount => f.write_str("service_account"),
            Var::PodName => f.write_str("pod_name"),
            Var::PodUid => f.write_str("pod_uid"),
            Var::NodeName => f.write_str("node_name"),
            Var::Label(k) => write!(f, "label:{k}"),
        }
    }
}

/// A validated template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTemplate {
    source: String,
    parts: Vec<Part>,
}

impl IdTemplate {
    /// Parses and validates a template for `trust_domain`.
    pub fn parse(source: &str, trust_domain: &str) -> Result<Self, TemplateError> {
        let parts = parse_parts(source)?;
        check_pod_controlled(&parts)?;
        let shape = |reason: String| TemplateError::Shape {
            trust_domain: trust_domain.to_owned(),
            reason,
        };
        // Placeholders must sit in the path: the literal prefix must already
        // contain `spiffe://<td>/`.
        let prefix = format!("spiffe://{trust_domain}/");
        match parts.first() {
            Some(Part::Lit(l)) if l.starts_with(&prefix) => {}
            _ => return Err(shape(format!("must start with {prefix}"))),
        }
        let t = IdTemplate {
            source: source.to_owned(),
            parts,
        };
        // A sample rendering must be a valid, non-reserved ID.
        let sample = t.render_with(|_| Ok("x".to_owned()))?;
        sworn_identity::SpiffeIdentity::parse(&sample).map_err(|e| shape(e.to_string()))?;
        Ok(t)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders for a pod, on the facts of the server's own read of it. Any missing or unsafe
    /// value is an error.
    pub fn render(&self, facts: &PodFacts) -> Result<String, TemplateError> {
        let out = self.render_with(|v| {
            let value = match v {
                Var::Namespace => facts.namespace.clone(),
                Var::ServiceAccount => facts.service_account.clone(),
                Var::PodName => facts.pod_name.clone(),
                Var::PodUid => facts.pod_uid.to_string(),
                Var::NodeName => facts.node_name.clone().unwrap_or_default(),
                Var::Label(k) => {
                    facts
                        .labels
                        .get(k)
                        .cloned()
                        .ok_or_else(|| TemplateError::BadValue {
                            placeholder: v.to_string(),
                            reason: "the pod has no such label",
                        })?
                }
            };
            check_fragment(v, &value)?;
            Ok(value)
        })?;
        sworn_identity::SpiffeIdentity::parse(&out)
            .map_err(|e| TemplateError::Rendered(e.to_string()))?;
        Ok(out)
    }

    fn render_with(
        &self,
        mut value: impl FnMut(&Var) -> Result<String, TemplateError>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&value(v)?),
            }
        }
        Ok(out)
    }
}

fn check_fragment(v: &Var, value: &str) -> Result<(), TemplateError> {
    let bad = |reason| TemplateError::BadValue {
        placeholder: v.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("empty"));
    }
    if value == "." || value == ".." {
        return Err(bad("a dot segment"));
    }
    if value.contains('/') {
        return Err(bad("contains /"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("characters outside [A-Za-z0-9._-]"));
    }
    Ok(())
}

/// The literal and placeholder parts of `source`, without the trust-domain checks.
fn parse_parts(source: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        let (lit, after) = rest.split_at(open);
        if lit.contains('}') {
            return Err(TemplateError::Braces);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.to_owned()));
        }
        let close = after.find('}').ok_or(TemplateError::Braces)?;
        let name = &after[1..close];
        if name.contains('{') {
            return Err(TemplateError::Braces);
        }
        let var = match name {
            "namespace" => Var::Namespace,
            "service_account" => Var::ServiceAccount,
            "pod_name" => Var::PodName,
            "pod_uid" => Var::PodUid,
            "node_name" => Var::NodeName,
            _ => match name.strip_prefix("label:") {
                Some(k) if sworn_identity::selector::is_label_key(k) => Var::Label(k.to_owned()),
                _ => return Err(TemplateError::UnknownPlaceholder(name.to_owned())),
            },
        };
        parts.push(Part::Var(var));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(TemplateError::Braces);
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(parts)
}

impl Var {
    /// Whether whoever creates a pod chooses this value.
    fn pod_controlled(&self) -> bool {
        matches!(self, Var::PodName | Var::ServiceAccount | Var::Label(_))
    }
}

/// The rules for pod-controlled values: each fills a whole path segment (a `/` or the
/// template's end on both sides), and the template also contains `{namespace}`.
fn check_pod_controlled(parts: &[Part]) -> Result<(), TemplateError> {
    let mut pod_controlled = false;
    for (i, p) in parts.iter().enumerate() {
        let Part::Var(v) = p else { continue };
        if !v.pod_controlled() {
            continue;
        }
        pod_controlled = true;
        let before = i.checked_sub(1).and_then(|j| parts.get(j));
        let opens = matches!(before, Some(Part::Lit(l)) if l.ends_with('/'));
        let closes = match parts.get(i + 1) {
            None => true,
            Some(Part::Lit(l)) => l.starts_with('/'),
            Some(Part::Var(_)) => false,
        };
        if !(opens && closes) {
            return Err(TemplateError::SharedSegment(v.to_string()));
        }
    }
    if pod_controlled && !parts.contains(&Part::Var(Var::Namespace)) {
        return Err(TemplateError::NeedsNamespace);
    }
    Ok(())
}

/// Why a stored template could never be used, if it breaks the rules for pod-controlled
/// values (it was stored before they existed). Checked without the trust domain, so
/// `entry list` and the startup check ask the same question as `entry create`.
pub fn pod_controlled_defect(source: &str) -> Option<TemplateError> {
    parse_parts(source)
        .and_then(|parts| check_pod_controlled(&parts))
        .err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PodFacts {
        PodFacts {
            namespace: "default".into(),
            service_account: "web".into(),
            pod_name: "web-1".into(),
            pod_uid: "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap(),
            node_name: Some("node-a".into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            deleting: false,
            containers: Vec::new(),
        }
    }

    #[test]
    fn renders_pod_facts() {
        let t = IdTemplate::parse("spiffe://td/ns/{namespace}/app/{label:app}", "td").unwrap();
        assert_eq!(
            t.render(&facts()).unwrap(),
            "spiffe://td/ns/default/app/web"
        );
    }

    #[test]
    fn refuses_bad_templates() {
        for (t, why) in [
            ("spiffe://td/app/{label:app}", "label without namespace"),
            ("spiffe://td/pod/{pod_name}", "pod name without namespace"),
            ("spiffe://{namespace}/x", "placeholder in trust domain"),
            ("spiffe://other/ns/{namespace}", "other trust domain"),
            ("spiffe://td/ns/{nope}", "unknown placeholder"),
            ("spiffe://td/ns/{namespace", "unbalanced"),
            ("spiffe://td/ns/}{namespace}", "stray brace"),
            ("spiffe://td/sworn/{namespace}", "reserved prefix"),
            ("spiffe://td/ns/{namespace}/", "trailing slash"),
            (
                "spiffe://td/sa/{service_account}",
                "service account without namespace",
            ),
        ] {
            assert!(IdTemplate::parse(t, "td").is_err(), "{t}: {why}");
        }
    }

    #[test]
    fn pod_controlled_values_fill_whole_segments() {
        for (t, var) in [
            ("spiffe://td/svc/{namespace}-{label:app}", "label:app"),
            ("spiffe://td/ns/{namespace}/app-{label:app}", "label:app"),
            ("spiffe://td/ns/{namespace}/{label:app}.svc", "label:app"),
            (
                "spiffe://td/ns/{namespace}/{pod_name}{label:app}",
                "pod_name",
            ),
            (
                "spiffe://td/{service_account}-{namespace}",
                "service_account",
            ),
        ] {
            let err = IdTemplate::parse(t, "td").unwrap_err();
            assert_eq!(err, TemplateError::SharedSegment(var.into()), "{t}");
            assert!(err.to_string().contains("whole path segment"), "{err}");
            assert_eq!(pod_controlled_defect(t), Some(err), "{t}");
        }
        for ok in [
            "spiffe://td/ns/{namespace}/app/{label:app}",
            "spiffe://td/ns/{namespace}/sa/{service_account}",
            "spiffe://td/{namespace}/{pod_name}",
            "spiffe://td/svc/{namespace}-{node_name}/pod-{pod_uid}",
        ] {
            assert!(IdTemplate::parse(ok, "td").is_ok(), "{ok}");
            assert_eq!(pod_controlled_defect(ok), None, "{ok}");
        }
    }

    /// Building blocks of arbitrary templates: literals with and without `/`, and every
    /// kind of placeholder.
    const PIECES: [&str; 8] = [
        "/",
        "-",
        "x",
        ".",
        "{namespace}",
        "{label:app}",
        "{pod_name}",
        "{node_name}",
    ];

    fn facts_of(ns: &str, app: &str, pod: &str) -> PodFacts {
        let mut f = facts();
        f.namespace = ns.into();
        f.pod_name = pod.into();
        f.labels.insert("app".into(), app.into());
        f
    }

    /// Every string of 1 to 3 characters over `a`, `b` and `-`: enough for two different
    /// pairs to render alike (`a-b` + `a` against `a` + `b-a`) whenever a template allows it.
    fn small_values() -> Vec<String> {
        let mut out: Vec<String> = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..3 {
            out = out
                .iter()
                .flat_map(|s| ["a", "b", "-"].map(|c| format!("{s}{c}")))
                .collect();
            all.extend(out.iter().cloned());
        }
        all
    }

    fn template() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy as _;
        proptest::collection::vec(0..PIECES.len(), 1..7).prop_map(|pieces| {
            let body: String = pieces.iter().map(|&i| PIECES[i]).collect();
            format!("spiffe://td/{body}")
        })
    }

    proptest::proptest! {
        /// Any template that is accepted renders different (namespace, label, pod name)
        /// triples to different IDs.
        #[test]
        fn accepted_templates_never_collide(source in template()) {
            let Ok(t) = IdTemplate::parse(&source, "td") else { return Ok(()) };
            let uses = |p: &str| source.contains(p);
            let mut seen = std::collections::BTreeMap::new();
            let values = small_values();
            for ns in &values {
                for app in &values {
                    for pod in ["a", "a-b", "b"] {
                        let Ok(id) = t.render(&facts_of(ns, app, pod)) else { continue };
                        let used = (
                            uses("{namespace}").then_some(ns.clone()),
                            uses("{label:app}").then_some(app.clone()),
                            uses("{pod_name}").then_some(pod),
                        );
                        if let Some(other) = seen.insert(id.clone(), used.clone()) {
                            proptest::prop_assert_eq!(other, used, "{} renders {} twice", source, id);
                        }
                    }
                }
            }
        }

        /// No pod-controlled value, whatever it holds, adds a segment to an ID.
        #[test]
        fn a_label_never_adds_a_segment(
            source in template(),
            app in proptest::string::string_regex("[a-z./%-]{0,8}").unwrap(),
        ) {
            let Ok(t) = IdTemplate::parse(&source, "td") else { return Ok(()) };
            if let Ok(id) = t.render(&facts_of("default", &app, "web-1")) {
                proptest::prop_assert_eq!(id.matches('/').count(), source.matches('/').count());
            }
        }
    }
}
