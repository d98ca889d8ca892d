//! Random identifiers and the digests we store instead of secrets.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `prefix_` + 128 random bits, base64url: unguessable, URL- and log-safe.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of a secret (refresh token, API key), base64url: what the tables store.
pub fn digest(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id("usr");
        assert!(a.starts_with("usr_"));
        assert_eq!(a.len(), 4 + 22);
        assert_ne!(a, new_id("usr"));
    }

    #[test]
    fn digest_is_sha256_base64url() {
        assert_eq!(digest("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
