//! The one rule for DNS SANs in an SVID, applied both when an entry is created and when the
//! CA mints, so an entry that is accepted can always be minted (X509-SVID spec §4: DNS SANs
//! are optional and carry no identity; RFC 5280 §4.2.1.6 for their form).
//!
//! A name is a lower-case RFC 1123 host name (as `rustls-pki-types` parses them) with no
//! trailing dot, no IP literal and no wildcard, and an SVID carries at most
//! [`MAX_DNS_NAMES`] of them. Duplicates are dropped, keeping the first.

use std::net::IpAddr;

use rustls_pki_types::DnsName;

/// Most DNS SANs one SVID may carry.
pub const MAX_DNS_NAMES: usize = 32;

/// Why a list of DNS names was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsNameError {
    /// More than [`MAX_DNS_NAMES`] names.
    #[error("{0} dns names given, at most {MAX_DNS_NAMES} are allowed")]
    TooMany(usize),
    /// One name is not acceptable.
    #[error("dns name {name:?} is invalid: {reason}")]
    Invalid {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks `names` against the rule and returns them without duplicates, in order.
pub fn check_dns_names(names: &[String]) -> Result<Vec<String>, DnsNameError> {
    if names.len() > MAX_DNS_NAMES {
        return Err(DnsNameError::TooMany(names.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if let Some(reason) = refusal(name) {
            return Err(DnsNameError::Invalid {
                name: name.clone(),
                reason,
            });
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

fn refusal(name: &str) -> Option<&'static str> {
    if name.starts_with("*.") || name.contains('*') {
        Some("wildcards are not allowed")
    } else if name.ends_with('.') {
        Some("trailing dot")
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some("must be lower case")
    } else if name.parse::<IpAddr>().is_ok() {
        Some("ip addresses are not dns names")
    } else if DnsName::try_from(name).is_err() {
        Some("not a valid host name")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_host_names_and_drops_duplicates() {
        assert_eq!(
            check_dns_names(&names(&["web.example.org", "web", "web.example.org"])),
            Ok(names(&["web.example.org", "web"]))
        );
    }

    #[test]
    fn refuses_what_the_ca_cannot_mint() {
        for bad in [
            "*.x",
            "*.example.org",
            "a.*.org",
            "Web.example.org",
            "web.",
            "10.0.0.1",
            "a b",
            "",
        ] {
            assert!(
                matches!(
                    check_dns_names(&names(&[bad])),
                    Err(DnsNameError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn at_most_32_names() {
        let ok: Vec<String> = (0..32).map(|i| format!("h{i}.example.org")).collect();
        assert!(check_dns_names(&ok).is_ok());
        let over: Vec<String> = (0..33).map(|i| format!("h{i}.example.org")).collect();
        assert_eq!(check_dns_names(&over), Err(DnsNameError::TooMany(33)));
    }
}
