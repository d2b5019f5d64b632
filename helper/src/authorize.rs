//! Authorization of a peer by its SPIFFE ID, after its chain verified (X509-SVID spec §5).
//!
//! A peer is allowed when it matches any rule: an exact ID, a whole trust domain, or an ID
//! prefix. Prefixes match whole path segments only, so `spiffe://td/ns/prod/` allows
//! `spiffe://td/ns/prod/sa/web` but never `spiffe://td/ns/production`. An authorizer with no
//! rule is refused at construction: "allow nobody" is never what an operator meant, and
//! "allow everybody" must be asked for by naming the trust domain.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use spiffe::{SpiffeId, TrustDomain};

/// Why an authorizer or one of its rules was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// No rule was given.
    #[error("no authorization rule: give at least one allowed id, trust domain or prefix")]
    Empty,
    /// A prefix is not a SPIFFE ID (with an optional trailing `/`).
    #[error("invalid spiffe id prefix {prefix:?}: {source}")]
    Prefix {
        /// The text given.
        prefix: String,
        /// Why it is not a SPIFFE ID.
        source: spiffe::SpiffeIdError,
    },
}

/// A SPIFFE ID prefix that matches on path-segment boundaries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdPrefix {
    trust_domain: TrustDomain,
    /// The path without a trailing `/` (empty for the whole trust domain).
    path: String,
}

impl IdPrefix {
    /// Whether `id` is this prefix or lies beneath it.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        if id.trust_domain() != &self.trust_domain {
            return false;
        }
        let path = id.path();
        path == self.path
            || (path.starts_with(&self.path) && path[self.path.len()..].starts_with('/'))
    }
}

impl FromStr for IdPrefix {
    type Err = AuthorizerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.strip_suffix('/').unwrap_or(s);
        let id = SpiffeId::new(trimmed).map_err(|source| AuthorizerError::Prefix {
            prefix: s.to_owned(),
            source,
        })?;
        Ok(IdPrefix {
            trust_domain: id.trust_domain().clone(),
            path: id.path().to_owned(),
        })
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}/", self.trust_domain.id_string(), self.path)
    }
}

/// Which peers are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorizer {
    ids: BTreeSet<SpiffeId>,
    trust_domains: BTreeSet<TrustDomain>,
    prefixes: Vec<IdPrefix>,
}

impl Authorizer {
    /// An authorizer allowing any peer that matches one of the rules.
    pub fn new(
        ids: impl IntoIterator<Item = SpiffeId>,
        trust_domains: impl IntoIterator<Item = TrustDomain>,
        prefixes: impl IntoIterator<Item = IdPrefix>,
    ) -> Result<Self, AuthorizerError> {
        let a = Authorizer {
            ids: ids.into_iter().collect(),
            trust_domains: trust_domains.into_iter().collect(),
            prefixes: prefixes.into_iter().collect(),
        };
        if a.ids.is_empty() && a.trust_domains.is_empty() && a.prefixes.is_empty() {
            return Err(AuthorizerError::Empty);
        }
        Ok(a)
    }

    /// Allows exactly these IDs.
    pub fn ids(ids: impl IntoIterator<Item = SpiffeId>) -> Result<Self, AuthorizerError> {
        Self::new(ids, [], [])
    }

    /// Allows every ID of this trust domain.
    pub fn trust_domain(td: TrustDomain) -> Self {
        Authorizer {
            ids: BTreeSet::new(),
            trust_domains: BTreeSet::from([td]),
            prefixes: Vec::new(),
        }
    }

    /// Whether `id` is allowed.
    pub fn allows(&self, id: &SpiffeId) -> bool {
        self.ids.contains(id)
            || self.trust_domains.contains(id.trust_domain())
            || self.prefixes.iter().any(|p| p.matches(id))
    }
}

impl fmt::Display for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for id in &self.ids {
            sep(f)?;
            write!(f, "id {id}")?;
        }
        for td in &self.trust_domains {
            sep(f)?;
            write!(f, "trust domain {td}")?;
        }
        for p in &self.prefixes {
            sep(f)?;
            write!(f, "prefix {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::new(s).unwrap()
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let p: IdPrefix = "spiffe://td/ns/prod/".parse().unwrap();
        assert!(p.matches(&id("spiffe://td/ns/prod")));
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/web")));
        assert!(!p.matches(&id("spiffe://td/ns/production")));
        assert!(!p.matches(&id("spiffe://other/ns/prod/sa/web")));
        let all: IdPrefix = "spiffe://td/".parse().unwrap();
        assert!(all.matches(&id("spiffe://td/x")));
        assert!("spiffe://td/ns//".parse::<IdPrefix>().is_err());
        assert!("https://td/ns".parse::<IdPrefix>().is_err());
    }

    #[test]
    fn rules_are_a_union_and_none_is_refused() {
        assert!(matches!(
            Authorizer::new([], [], []),
            Err(AuthorizerError::Empty)
        ));
        let a = Authorizer::new(
            [id("spiffe://a/web")],
            [TrustDomain::new("b").unwrap()],
            ["spiffe://c/ns/x/".parse().unwrap()],
        )
        .unwrap();
        assert!(a.allows(&id("spiffe://a/web")));
        assert!(!a.allows(&id("spiffe://a/db")));
        assert!(a.allows(&id("spiffe://b/anything")));
        assert!(a.allows(&id("spiffe://c/ns/x/sa/y")));
        assert!(!a.allows(&id("spiffe://c/ns/y")));
    }
}
