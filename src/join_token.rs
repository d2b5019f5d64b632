//! Join tokens: one-time node credentials the admin API hands out and the agent API
//! redeems. Only their hash is stored (docs/architecture.md, "Node attestation").

use sha2::Digest;

/// The stored form of a join token: SHA-256, lowercase hex.
pub fn hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_is_stored_as_its_sha256_in_lowercase_hex() {
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
