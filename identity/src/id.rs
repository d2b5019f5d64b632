//! SPIFFE IDs with sworn's rules on top of the `spiffe` crate's parser.
//!
//! Invariant: a [`SpiffeIdentity`] always satisfies the SPIFFE-ID spec
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>) *as written*, which is
//! stricter than what the `spiffe` crate accepts in three places, enforced here:
//!
//! - §2: the scheme is `spiffe` in lower case (the crate accepts `SPIFFE://`);
//! - "Components".1: trust domain names are lower case (the crate silently lower-cases `Example.ORG`,
//!   so two different strings would name one identity);
//! - "Components".3: at most 2048 bytes (the crate only enforces it when building from segments).
//!
//! sworn adds: a workload ID has a non-empty path (the trust domain ID `spiffe://td` names the
//! trust domain, not a workload), and the first path segment `sworn` is reserved for sworn's own
//! identities (docs/architecture.md, "Node attestation"). Reserved IDs can only be built through the `sworn_*`
//! constructors or read back with [`SpiffeIdentity::parse_including_reserved`].

use std::fmt;
use std::str::FromStr;

use spiffe::spiffe_id::SpiffeIdError;
use spiffe::{SpiffeId, TrustDomain};

/// Maximum length of a SPIFFE ID URI in bytes (SPIFFE-ID spec "Components").
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;

/// First path segment reserved for sworn's own identities (`spiffe://<td>/sworn/...`).
pub const RESERVED_SEGMENT: &str = "sworn";

/// Why a string is not an acceptable SPIFFE ID or trust domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The `spiffe` crate rejected the input (bad characters, dot or empty segments,
    /// percent-encoding, query, fragment, userinfo, port, trailing `/`, ...).
    #[error("invalid spiffe id: {0}")]
    Syntax(#[source] SpiffeIdError),
    /// The ID is longer than the spec's 2048-byte limit.
    #[error("spiffe id is {len} bytes, the limit is {MAX_SPIFFE_ID_BYTES}")]
    TooLong {
        /// Length of the rejected input in bytes.
        len: usize,
    },
    /// The scheme is not exactly `spiffe://` (the spec requires lower case).
    #[error("the scheme must be `spiffe://` in lower case")]
    SchemeNotLowerCase,
    /// The trust domain contains upper-case letters (the spec requires lower case).
    #[error("the trust domain must be lower case")]
    TrustDomainNotLowerCase,
    /// A trust domain was expected but a URI (or something with `:` or `/`) was given.
    #[error("a trust domain is a bare name such as `example.org`, not a uri")]
    TrustDomainNotBare,
    /// The ID has no path; it names a trust domain, not a workload.
    #[error("a workload spiffe id needs a path after the trust domain")]
    EmptyPath,
    /// The path starts with the reserved segment `/sworn/`.
    #[error("the path prefix /{RESERVED_SEGMENT}/ is reserved for sworn's own identities")]
    Reserved,
}

/// A SPIFFE ID that satisfies the SPIFFE-ID spec and sworn's rules (module docs).
///
/// Serialises as its URI string. There is deliberately no `Deserialize`: reading an ID back
/// must go through [`SpiffeIdentity::parse`] or, for stored sworn identities,
/// [`SpiffeIdentity::parse_including_reserved`], so the caller decides which rule applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeIdentity {
    id: SpiffeId,
    uri: String,
}

impl SpiffeIdentity {
    /// Parses an ID given by a user, an entry or a workload: the reserved prefix is refused.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let id = Self::parse_including_reserved(s)?;
        if id.is_reserved() {
            return Err(IdError::Reserved);
        }
        Ok(id)
    }

    /// Parses an ID that may be one of sworn's own (`/sworn/...`), e.g. read from a
    /// certificate or a pinned server ID. Never use this for input that chooses what to mint.
    pub fn parse_including_reserved(s: &str) -> Result<Self, IdError> {
        if s.len() > MAX_SPIFFE_ID_BYTES {
            return Err(IdError::TooLong { len: s.len() });
        }
        // The crate compares the scheme case-insensitively; the spec does not.
        if !s.starts_with(spiffe::spiffe_id::SPIFFE_SCHEME_PREFIX) {
            // Let the crate explain what is wrong when it is not a case issue.
            SpiffeId::new(s).map_err(IdError::Syntax)?;
            return Err(IdError::SchemeNotLowerCase);
        }
        let id = SpiffeId::new(s).map_err(IdError::Syntax)?;
        if id.to_string() != s {
            // The only normalisation the crate performs is lower-casing the trust domain.
            return Err(IdError::TrustDomainNotLowerCase);
        }
        if id.path().is_empty() {
            return Err(IdError::EmptyPath);
        }
        Ok(Self::from_checked(id))
    }

    /// Builds `spiffe://<td>/<segments...>` for a workload; refuses the reserved prefix.
    pub fn from_segments(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let id = Self::build(trust_domain, segments)?;
        if id.is_reserved() {
            return Err(IdError::Reserved);
        }
        Ok(id)
    }

    /// The server's own identity, `spiffe://<td>/sworn/server`, pinned by agents.
    ///
    /// Fails only if the trust domain is so long that the ID exceeds 2048 bytes, which a
    /// validated trust domain (at most 255 bytes) cannot reach.
    pub fn sworn_server(trust_domain: &TrustDomain) -> Result<Self, IdError> {
        Self::build(trust_domain, &[RESERVED_SEGMENT, "server"])
    }

    /// An agent identity, `spiffe://<td>/sworn/agent/<segments...>` (docs/architecture.md, "Node attestation").
    pub fn sworn_agent(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let mut all = vec![RESERVED_SEGMENT, "agent"];
        all.extend_from_slice(segments);
        Self::build(trust_domain, &all)
    }

    /// Any other sworn-internal identity, `spiffe://<td>/sworn/<segments...>`.
    pub fn sworn_internal(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let mut all = vec![RESERVED_SEGMENT];
        all.extend_from_slice(segments);
        Self::build(trust_domain, &all)
    }

    /// True for sworn's own identities (first path segment `sworn`, compared without case so
    /// `/Sworn/` cannot be used to impersonate them in case-insensitive consumers).
    pub fn is_reserved(&self) -> bool {
        let first = self.id.path().split('/').nth(1).unwrap_or_default();
        first.eq_ignore_ascii_case(RESERVED_SEGMENT)
    }

    /// The underlying `spiffe` crate ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }

    /// The trust domain of this ID.
    pub fn trust_domain(&self) -> &TrustDomain {
        self.id.trust_domain()
    }

    /// The path, starting with `/` (never empty).
    pub fn path(&self) -> &str {
        self.id.path()
    }

    /// The URI form, `spiffe://<td><path>`.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    fn build(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        if segments.is_empty() {
            return Err(IdError::EmptyPath);
        }
        let id = SpiffeId::from_segments(trust_domain.clone(), segments).map_err(|e| match e {
            SpiffeIdError::SpiffeIdTooLong { .. } => IdError::TooLong {
                len: trust_domain.id_string().len()
                    + segments.iter().map(|s| s.len() + 1).sum::<usize>(),
            },
            other => IdError::Syntax(other),
        })?;
        Ok(Self::from_checked(id))
    }

    fn from_checked(id: SpiffeId) -> Self {
        let uri = id.to_string();
        Self { id, uri }
    }
}

/// Parses a bare trust domain name (`example.org`) as used in configuration.
///
/// Stricter than `TrustDomain::new`, which also accepts a whole SPIFFE ID and upper case.
pub fn parse_trust_domain(s: &str) -> Result<TrustDomain, IdError> {
    if s.contains(':') || s.contains('/') {
        return Err(IdError::TrustDomainNotBare);
    }
    let td = TrustDomain::new(s).map_err(IdError::Syntax)?;
    if td.as_str() != s {
        return Err(IdError::TrustDomainNotLowerCase);
    }
    Ok(td)
}

impl fmt::Display for SpiffeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SpiffeIdentity {
    type Err = IdError;

    /// Same as [`SpiffeIdentity::parse`]: the reserved prefix is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for SpiffeIdentity {
    fn as_ref(&self) -> &str {
        &self.uri
    }
}

impl serde::Serialize for SpiffeIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.uri)
    }
}
