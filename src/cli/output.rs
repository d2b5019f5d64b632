//! Printing admin results as text or JSON, and writing files atomically.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use serde_json::json;
use sworn_proto::admin as pb;
use sworn_proto::admin::Entry;

use super::args::Output;

/// Unix seconds as RFC 3339.
pub fn time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Why the server will never issue for the entry, as the server reports it.
fn invalid(e: &Entry) -> Option<&str> {
    (!e.invalid.is_empty()).then_some(e.invalid.as_str())
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "id": e.id,
        "spiffe_id": (!e.spiffe_id.is_empty()).then_some(&e.spiffe_id),
        "spiffe_id_template": (!e.spiffe_id_template.is_empty()).then_some(&e.spiffe_id_template),
        "selectors": e.selectors,
        "node": (!e.node.is_empty()).then_some(&e.node),
        "ttl_seconds": (e.ttl_seconds > 0).then_some(e.ttl_seconds),
        "dns_names": e.dns_names,
        "hint": e.hint,
        "created_at": time(e.created_at),
        "invalid": invalid(e),
    })
}

/// Prints entries; `single` prints one object instead of an array in JSON.
pub fn entries(out: Output, list: &[Entry], single: bool) {
    if out == Output::Json {
        let v = if single && list.len() == 1 {
            entry_json(&list[0])
        } else {
            serde_json::Value::Array(list.iter().map(entry_json).collect())
        };
        println!("{v}");
        return;
    }
    if list.is_empty() {
        println!("no entries");
    }
    for e in list {
        println!("Entry ID    : {}", e.id);
        if e.spiffe_id.is_empty() {
            println!("Template    : {}", e.spiffe_id_template);
        } else {
            println!("SPIFFE ID   : {}", e.spiffe_id);
        }
        for s in &e.selectors {
            println!("Selector    : {s}");
        }
        let invalid = invalid(e);
        let node = match (e.node.as_str(), invalid) {
            ("", Some(_)) => "no agent",
            ("", None) => "any agent",
            (n, _) => n,
        };
        println!("Node        : {node}");
        if let Some(d) = invalid {
            println!("Invalid     : {d}");
        }
        if e.ttl_seconds > 0 {
            println!("TTL         : {}s", e.ttl_seconds);
        }
        for d in &e.dns_names {
            println!("DNS name    : {d}");
        }
        if !e.hint.is_empty() {
            println!("Hint        : {}", e.hint);
        }
        println!();
    }
}

/// Prints agents.
pub fn agents(out: Output, list: &[pb::Agent]) {
    if out == Output::Json {
        let v: Vec<_> = list
            .iter()
            .map(|a| {
                json!({
                    "id": a.id, "method": a.method, "node_name": a.node_name,
                    "node_uid": a.node_uid, "pod_uid": a.pod_uid, "cluster": a.cluster,
                    "serial": a.serial, "expires_at": time(a.expires_at),
                    "banned": a.banned, "attested_at": time(a.attested_at),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    if list.is_empty() {
        println!("no agents");
    }
    for a in list {
        println!("Agent ID    : {}", a.id);
        println!("Method      : {}", a.method);
        if !a.node_name.is_empty() {
            println!("Node        : {} ({})", a.node_name, a.node_uid);
        }
        println!("Expires     : {}", time(a.expires_at));
        println!("Banned      : {}", a.banned);
        println!();
    }
}

/// Prints one audit event.
pub fn audit(out: Output, ev: &pb::AuditEvent) {
    if out == Output::Json {
        let detail: serde_json::Value =
            serde_json::from_str(&ev.detail).unwrap_or(serde_json::Value::Null);
        println!(
            "{}",
            json!({"id": ev.id, "at": time(ev.at), "kind": ev.kind, "decision": ev.decision, "detail": detail})
        );
    } else {
        println!(
            "{} {} {:<5} {} {}",
            ev.id,
            time(ev.at),
            ev.decision,
            ev.kind,
            ev.detail
        );
    }
}

/// DER certificates as concatenated PEM.
pub fn pem_certs(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone())))
        .collect()
}

/// The SPIFFE bundle format: a JWKS whose keys carry `use: x509-svid` and the root in `x5c`.
pub fn jwks(ders: &[Vec<u8>]) -> Result<String> {
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut keys = Vec::new();
    for der in ders {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).context("bundle root does not parse")?;
        let point = &cert.public_key().subject_public_key.data;
        // Uncompressed P-256 point: 0x04 || X (32) || Y (32).
        if point.len() != 65 || point[0] != 4 {
            anyhow::bail!("bundle root key is not an uncompressed P-256 point");
        }
        keys.push(json!({
            "use": "x509-svid", "kty": "EC", "crv": "P-256",
            "x": b64u.encode(&point[1..33]), "y": b64u.encode(&point[33..65]),
            "x5c": [b64.encode(der)],
        }));
    }
    Ok(serde_json::to_string_pretty(&json!({ "keys": keys }))?)
}

/// Writes `path` atomically with mode `mode` ([`sworn_identity::fs::write_atomic`]: an
/// unpredictable `O_EXCL` temp file in the same directory, created with `mode`, fsynced,
/// renamed over the target, the directory fsynced).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    Ok(sworn_identity::fs::write_atomic(path, data, mode)?)
}
