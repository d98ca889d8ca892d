//! TOTP (RFC 6238) over HOTP (RFC 4226), recovery codes, and the sealing of TOTP secrets.
//!
//! Pure functions with the clock passed in. HMAC and AES-256-GCM come from aws-lc-rs (already
//! linked for the signing keys); nothing here reads a table.
//!
//! Secrets at rest: a TOTP secret is sealed with AES-256-GCM under the MFA key (a 256-bit key
//! in its own Secrets Manager secret, `MFA_KEY_SECRET_ID`), with the user's id as associated
//! data — so the table alone yields nothing, and a sealed secret copied to another user's item
//! does not open. Recovery codes are stored as HMAC-SHA256 under the same key (a pepper): a
//! table dump cannot be brute-forced offline without the key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

/// Seconds per TOTP step (RFC 6238 default; what every authenticator app uses).
pub const STEP: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of clock skew accepted either side (±1: 30 s).
pub const SKEW: i64 = 1;
/// Bytes of a TOTP secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes made at confirmation.
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// HOTP (RFC 4226 §5.3): dynamic truncation of HMAC(key, counter), `digits` decimal digits.
pub fn hotp(key: &[u8], counter: u64, hash: Hash, digits: u32) -> u32 {
    let tag = hmac::sign(
        &hmac::Key::new(hash.algorithm(), key),
        &counter.to_be_bytes(),
    );
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The TOTP step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// The TOTP code of `key` at Unix time `unix`, zero-padded.
pub fn code_at(key: &[u8], unix: i64, hash: Hash, digits: u32) -> String {
    let counter = u64::try_from(step_of(unix)).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(key, counter, hash, digits),
        width = digits as usize
    )
}

/// The step a presented 6-digit SHA-1 code matches at `now` within ±`SKEW` steps, checking
/// every candidate (no early exit) with constant-time comparison. `None` for anything else,
/// including codes that are not exactly six digits.
pub fn matching_step(key: &[u8], code: &str, now: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for delta in -SKEW..=SKEW {
        let at = now + delta * STEP;
        let expected = code_at(key, at, Hash::Sha1, DIGITS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step_of(at));
        }
    }
    found
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A new random TOTP secret.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::fill(&mut bytes);
    bytes
}

/// The `otpauth://totp/` URI authenticator apps scan (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| {
        form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// Recovery codes: `xxxxx-xxxxx`, 10 characters of an unambiguous alphabet (no 0/o/1/l):
/// 50 bits each.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::fill(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// A recovery code as typed: lower case, without spaces or dashes.
pub fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The MFA key: seals TOTP secrets and peppers recovery codes.
pub struct MfaKey {
    aead: LessSafeKey,
    mac: hmac::Key,
}

impl std::fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaKey(<redacted>)")
    }
}

/// A sealed secret could not be opened (wrong key, wrong user, or tampered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsealable;

impl MfaKey {
    /// From 32 key bytes.
    pub fn new(bytes: &[u8; 32]) -> Self {
        // An AES-256 key of exactly 32 bytes always constructs.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .unwrap_or_else(|_| unreachable!("32-byte AES-256 key"));
        Self {
            aead: LessSafeKey::new(unbound),
            mac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// From the secret's text: 32 bytes, base64 (standard or url-safe).
    pub fn from_secret(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::new(&key))
    }

    /// A new random key's secret text.
    pub fn generate_secret() -> String {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Seal `secret` for `user_id`: base64url(nonce || ciphertext || tag).
    pub fn seal(&self, secret: &[u8], user_id: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut data = secret.to_vec();
        // Sealing in place with a fresh random nonce cannot fail for inputs this small.
        if self
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user_id.as_bytes()),
                &mut data,
            )
            .is_err()
        {
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// Open what `seal` made for `user_id`.
    pub fn open(&self, sealed: &str, user_id: &str) -> Result<Vec<u8>, Unsealable> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Unsealable)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(Unsealable);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut data = rest.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut data)
            .map_err(|_| Unsealable)?;
        Ok(plain.to_vec())
    }

    /// The stored form of a recovery code: HMAC-SHA256 under the key, base64url.
    pub fn recovery_digest(&self, code: &str) -> String {
        let tag = hmac::sign(&self.mac, normalise_recovery_code(code).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII digits 1234567890 repeated to each hash's
    /// block size, 8 digits.
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let vectors: &[(i64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in vectors {
            assert_eq!(code_at(&sha1, *t, Hash::Sha1, 8), *c1, "SHA1 {t}");
            assert_eq!(code_at(&sha256, *t, Hash::Sha256, 8), *c256, "SHA256 {t}");
            assert_eq!(code_at(&sha512, *t, Hash::Sha512, 8), *c512, "SHA512 {t}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values for counters 0..9.
    #[test]
    fn rfc_4226_appendix_d_vectors() {
        let key = b"12345678901234567890";
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(hotp(key, counter as u64, Hash::Sha1, 6), *value);
        }
    }

    #[test]
    fn codes_match_within_one_step_of_skew_and_no_further() {
        let key = new_secret();
        let now = 1_800_000_015;
        let code = code_at(&key, now, Hash::Sha1, 6);
        assert_eq!(matching_step(&key, &code, now), Some(step_of(now)));
        assert_eq!(matching_step(&key, &code, now + 30), Some(step_of(now)));
        assert_eq!(matching_step(&key, &code, now - 30), Some(step_of(now)));
        assert_eq!(matching_step(&key, &code, now + 60), None);
        assert_eq!(matching_step(&key, &code, now - 60), None);
        for bad in ["", "12345", "1234567", "12a456", " 123456"] {
            assert_eq!(matching_step(&key, bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_and_otpauth_uris() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri("Portcullis", "a b@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Portcullis:a%20b%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Portcullis&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let key = MfaKey::from_secret(&MfaKey::generate_secret()).unwrap();
        let secret = new_secret();
        let sealed = key.seal(&secret, "usr_1");
        assert!(!sealed.contains(&base32(&secret)));
        assert_eq!(key.open(&sealed, "usr_1").unwrap(), secret.to_vec());
        assert_eq!(key.open(&sealed, "usr_2"), Err(Unsealable));
        let other = MfaKey::from_secret(&MfaKey::generate_secret()).unwrap();
        assert_eq!(other.open(&sealed, "usr_1"), Err(Unsealable));
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            key.open(&String::from_utf8(tampered).unwrap(), "usr_1")
                .is_err()
        );
        assert!(MfaKey::from_secret("too-short").is_none());
        assert_eq!(format!("{key:?}"), "MfaKey(<redacted>)");
    }

    #[test]
    fn recovery_codes_are_distinct_and_compared_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let key = MfaKey::new(&[7; 32]);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(
            key.recovery_digest(c),
            key.recovery_digest(&format!(" {} ", c.to_uppercase().replace('-', "")))
        );
        assert_ne!(key.recovery_digest(c), key.recovery_digest(&codes[1]));
        assert_ne!(
            key.recovery_digest(c),
            MfaKey::new(&[8; 32]).recovery_digest(c)
        );
    }
}
