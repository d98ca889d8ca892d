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

/// `len` random characters of `[A-Za-z0-9]` (5.95 bits each; 22 make 130 bits): an id
/// that never starts with `-` (so command lines never mistake it for an option) and needs
/// no escaping anywhere, not even in HTTP Basic credentials.
pub fn alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(len);
    while id.len() < len {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
        for b in bytes.into_iter().filter(|b| *b < 248) {
            if id.len() < len {
                id.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    id
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
