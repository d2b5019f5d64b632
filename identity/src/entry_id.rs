//! Registration entry IDs, and what a mint item asks for (docs/architecture.md, "Outcomes"
//! and "The agent's SVID cache").
//!
//! Invariant: an [`EntryId`] is always a UUID, and its only text form is the canonical
//! lowercase hyphenated one (`8-4-4-4-12`), which the server assigns
//! ([`EntryId::generate`]), stores, sends in Sync and audits, and the admin API, the CLI and
//! the agent API accept. Any other spelling of a UUID is refused, so two strings never name
//! one entry.
//!
//! A mint item names an entry or, for a pod, its default identity (`ns/<ns>/sa/<sa>`), which
//! is no entry: [`Grant`] says which, and the empty `entry_id` of the wire form is read and
//! written only by [`Grant::from_wire`] and [`Grant::to_wire`].

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a string is not an [`EntryId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry id {0:?} is not a lowercase hyphenated uuid")]
pub struct EntryIdError(
    /// The refused text, at most 64 characters of it (it came from a request or a row).
    String,
);

impl EntryIdError {
    fn new(text: &str) -> Self {
        EntryIdError(text.chars().take(64).collect())
    }
}

/// A registration entry's server-assigned UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(Uuid);

impl EntryId {
    /// A new random (version 4) ID, for an entry being created.
    pub fn generate() -> Self {
        EntryId(Uuid::new_v4())
    }

    /// The ID as a [`Uuid`].
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for EntryId {
    type Err = EntryIdError;

    /// Accepts only the canonical lowercase hyphenated form, the one [`EntryId`] prints.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::uuid_text::parse_canonical(s)
            .map(EntryId)
            .ok_or_else(|| EntryIdError::new(s))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({self})")
    }
}

impl serde::Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EntryId {
    /// The same rule as [`str::parse`]: only the canonical form.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The identity one mint item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// A pod's default identity, `spiffe://<td>/ns/<ns>/sa/<sa>` (Kubernetes only; factor
    /// W5 decides it without an entry).
    PodDefault,
    /// The identity of a registration entry.
    Entry(EntryId),
}

impl Grant {
    /// Reads a mint item's `entry_id`: empty for [`Grant::PodDefault`], else an [`EntryId`].
    pub fn from_wire(entry_id: &str) -> Result<Self, EntryIdError> {
        match entry_id {
            "" => Ok(Grant::PodDefault),
            id => id.parse().map(Grant::Entry),
        }
    }

    /// The `entry_id` of a mint item (and of the SVID issued for it).
    pub fn to_wire(&self) -> String {
        match self {
            Grant::PodDefault => String::new(),
            Grant::Entry(id) => id.to_string(),
        }
    }

    /// The entry, unless this is a pod's default identity.
    pub fn entry(&self) -> Option<&EntryId> {
        match self {
            Grant::PodDefault => None,
            Grant::Entry(id) => Some(id),
        }
    }
}

impl From<EntryId> for Grant {
    fn from(id: EntryId) -> Self {
        Grant::Entry(id)
    }
}

impl fmt::Display for Grant {
    /// `default` for a pod's default identity (for logs; the wire form is
    /// [`Grant::to_wire`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::PodDefault => f.write_str("default"),
            Grant::Entry(id) => fmt::Display::fmt(id, f),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ID: &str = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";

    #[test]
    fn an_entry_id_has_one_spelling() {
        let id: EntryId = ID.parse().unwrap();
        assert_eq!(id.to_string(), ID);
        assert_eq!(id.to_string().parse::<EntryId>(), Ok(id));
        for bad in [
            "0C4A1A6E-3B5D-4F7E-9A2B-1C2D3E4F5A6B",
            "0c4a1a6e3b5d4f7e9a2b1c2d3e4f5a6b",
            "{0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b}",
            "urn:uuid:0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b",
            " 0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b",
            "not-a-uuid",
            "",
        ] {
            let err = bad.parse::<EntryId>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("entry id {bad:?} is not a lowercase hyphenated uuid")
            );
        }
    }

    #[test]
    fn a_refused_entry_id_is_quoted_at_most_64_characters_long() {
        let long = "x".repeat(10_000);
        let err = long.parse::<EntryId>().unwrap_err().to_string();
        assert!(err.contains(&"x".repeat(64)) && !err.contains(&"x".repeat(65)));
    }

    #[test]
    fn generated_ids_read_back_and_differ() {
        let (a, b) = (EntryId::generate(), EntryId::generate());
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<EntryId>(), Ok(a));
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn serde_is_the_canonical_string() {
        let id: EntryId = ID.parse().unwrap();
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(ID));
        assert_eq!(
            serde_json::from_value::<EntryId>(serde_json::json!(ID)).unwrap(),
            id
        );
        assert!(serde_json::from_value::<EntryId>(serde_json::json!(ID.to_uppercase())).is_err());
    }

    #[test]
    fn the_empty_wire_entry_id_is_the_pod_default_identity_and_nothing_else_is() {
        let id: EntryId = ID.parse().unwrap();
        assert_eq!(Grant::from_wire(""), Ok(Grant::PodDefault));
        assert_eq!(Grant::from_wire(ID), Ok(Grant::Entry(id)));
        assert!(Grant::from_wire(" ").is_err());
        assert!(Grant::from_wire("default").is_err());
        for grant in [Grant::PodDefault, Grant::Entry(id)] {
            assert_eq!(Grant::from_wire(&grant.to_wire()), Ok(grant));
        }
        assert_eq!(Grant::PodDefault.entry(), None);
        assert_eq!(Grant::Entry(id).entry(), Some(&id));
    }
}
