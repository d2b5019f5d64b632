//! The one text form sworn reads a UUID in: canonical `8-4-4-4-12` lowercase hex, the form
//! the API server writes pod UIDs in and `Uuid`'s `Display` prints. Braced, URN, simple
//! (undashed) and uppercase forms are refused so that one UUID has exactly one spelling.

use uuid::Uuid;

/// `s` as a UUID if it is in the canonical form, `None` otherwise.
pub(crate) fn parse_canonical(s: &str) -> Option<Uuid> {
    let uuid = Uuid::try_parse(s).ok()?;
    let mut buf = Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buf) == s).then_some(uuid)
}
