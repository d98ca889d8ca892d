//! The signing key ring, loaded from the secret named by `SIGNING_KEYS_SECRET_ID`.
//!
//! The secret is a JWK Set (RFC 7517) with private material — the first key signs, every key
//! verifies — or a plain random string, taken as one HS256 key. Each key is pinned to its own
//! algorithm: the `alg` a token claims is never trusted to pick how it is checked.

use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// Shortest HS256 secret we accept (bytes): RFC 7518 §3.2 asks for at least the hash size.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// One key of the ring. `Debug` shows its id and algorithm only.
#[derive(Clone)]
pub struct RingKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public JWK, for asymmetric keys (served by the JWKS endpoint).
    public_jwk: Option<serde_json::Value>,
}

impl RingKey {
    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub fn public_jwk(&self) -> Option<&serde_json::Value> {
        self.public_jwk.as_ref()
    }
}

impl fmt::Debug for RingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RingKey(kid={}, alg={:?})", self.kid, self.alg)
    }
}

#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

/// The secret could not be turned into a key ring. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRingError(pub String);

impl fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing keys: {}", self.0)
    }
}

impl std::error::Error for KeyRingError {}

/// A private JWK as stored in the secret. Only the members we use; no `Debug`.
#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    k: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<PrivateJwk>,
}

fn b64url(text: &str) -> Result<Vec<u8>, KeyRingError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| KeyRingError("a key member is not base64url".into()))
}

impl KeyRing {
    /// Parse the secret string (JWK Set or plain HS256 secret).
    pub fn from_secret(secret: &str) -> Result<Self, KeyRingError> {
        let trimmed = secret.trim();
        if trimmed.starts_with('{') {
            let set: JwkSet = serde_json::from_str(trimmed)
                .map_err(|_| KeyRingError("the secret is not a valid JWK Set".into()))?;
            let mut keys = Vec::with_capacity(set.keys.len());
            for (i, jwk) in set.keys.into_iter().enumerate() {
                let key = Self::key_from_jwk(jwk)
                    .map_err(|e| KeyRingError(format!("key #{i}: {}", e.0)))?;
                if keys.iter().any(|k: &RingKey| k.kid == key.kid) {
                    return Err(KeyRingError(format!("duplicate kid {:?}", key.kid)));
                }
                keys.push(key);
            }
            if keys.is_empty() {
                return Err(KeyRingError("the JWK Set has no keys".into()));
            }
            Ok(Self { keys })
        } else {
            Ok(Self {
                keys: vec![Self::hmac_key(None, trimmed.as_bytes())?],
            })
        }
    }

    fn hmac_key(kid: Option<String>, secret: &[u8]) -> Result<RingKey, KeyRingError> {
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(KeyRingError(format!(
                "an HS256 secret needs at least {MIN_HMAC_SECRET_BYTES} bytes"
            )));
        }
        // A stable, non-secret id for a plain secret: a truncated hash of a labelled digest.
        let kid = kid.unwrap_or_else(|| {
            let digest = Sha256::new()
                .chain_update(b"portcullis-kid\0")
                .chain_update(secret)
                .finalize();
            format!(
                "hs-{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9])
            )
        });
        let encoding = EncodingKey::from_secret(secret)
            .map_err(|_| KeyRingError("bad HS256 secret".into()))?;
        let decoding = DecodingKey::from_secret(secret)
            .map_err(|_| KeyRingError("bad HS256 secret".into()))?;
        Ok(RingKey {
            kid,
            alg: Algorithm::HS256,
            encoding,
            decoding,
            public_jwk: None,
        })
    }

    fn key_from_jwk(jwk: PrivateJwk) -> Result<RingKey, KeyRingError> {
        let kid = jwk
            .kid
            .filter(|k| !k.is_empty() && k.len() <= 128)
            .ok_or_else(|| KeyRingError("every key needs a kid of 1 to 128 characters".into()))?;
        // A key marked for anything but signatures (e.g. encryption) never signs or verifies.
        if jwk.key_use.as_deref().is_some_and(|u| u != "sig")
            || jwk
                .key_ops
                .as_ref()
                .is_some_and(|ops| !ops.iter().any(|o| o == "sign" || o == "verify"))
        {
            return Err(KeyRingError(format!(
                "key {kid:?} is not for signatures (use/key_ops)"
            )));
        }
        match (jwk.kty.as_str(), jwk.alg.as_deref(), jwk.crv.as_deref()) {
            ("oct", Some("HS256") | None, _) => {
                let k = jwk
                    .k
                    .ok_or_else(|| KeyRingError("an oct key needs k".into()))?;
                Self::hmac_key(Some(kid), &b64url(&k)?)
            }
            ("OKP", Some("EdDSA" | "Ed25519") | None, Some("Ed25519")) => {
                let d = b64url(
                    jwk.d
                        .as_deref()
                        .ok_or_else(|| KeyRingError("an OKP signing key needs d".into()))?,
                )?;
                let x_text = jwk
                    .x
                    .ok_or_else(|| KeyRingError("an OKP key needs x".into()))?;
                let x = b64url(&x_text)?;
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x).map_err(|_| {
                    KeyRingError("the Ed25519 d and x do not form a key pair".into())
                })?;
                let pkcs8 = pair
                    .to_pkcs8()
                    .map_err(|_| KeyRingError("Ed25519 key export failed".into()))?;
                let decoding = DecodingKey::from_ed_der(pair.public_key().as_ref());
                Ok(RingKey {
                    public_jwk: Some(serde_json::json!({
                        "kty": "OKP", "crv": "Ed25519", "x": x_text, "kid": kid, "alg": "EdDSA", "use": "sig"
                    })),
                    kid,
                    alg: Algorithm::EdDSA,
                    encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
                    decoding,
                })
            }
            ("EC", Some("ES256") | None, Some("P-256")) => {
                let d = b64url(
                    jwk.d
                        .as_deref()
                        .ok_or_else(|| KeyRingError("an EC signing key needs d".into()))?,
                )?;
                let (x_text, y_text) = match (jwk.x, jwk.y) {
                    (Some(x), Some(y)) => (x, y),
                    _ => return Err(KeyRingError("an EC key needs x and y".into())),
                };
                let (x, y) = (b64url(&x_text)?, b64url(&y_text)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyRingError("a P-256 key needs 32-byte x and y".into()));
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &d,
                    &point,
                )
                .map_err(|_| KeyRingError("the P-256 d, x and y do not form a key pair".into()))?;
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| KeyRingError("P-256 key export failed".into()))?;
                let decoding = DecodingKey::from_ec_components(&x_text, &y_text)
                    .map_err(|_| KeyRingError("bad P-256 public key".into()))?;
                Ok(RingKey {
                    public_jwk: Some(serde_json::json!({
                        "kty": "EC", "crv": "P-256", "x": x_text, "y": y_text, "kid": kid, "alg": "ES256", "use": "sig"
                    })),
                    kid,
                    alg: Algorithm::ES256,
                    encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
                    decoding,
                })
            }
            (kty, alg, _) => Err(KeyRingError(format!(
                "unsupported key type {kty:?} with alg {:?}",
                alg.unwrap_or("-")
            ))),
        }
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &RingKey {
        // `from_secret` refuses an empty ring, so the first key always exists.
        &self.keys[0]
    }

    /// The key with this id, if the ring holds it.
    pub fn find(&self, kid: &str) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    /// The public JWK Set: every asymmetric key's public members, nothing else. HMAC keys are
    /// never published, and private members are stripped again here whatever built the JWK.
    pub fn public_jwks(&self) -> serde_json::Value {
        const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(|k| k.public_jwk.clone())
            .map(|mut jwk| {
                if let Some(obj) = jwk.as_object_mut() {
                    obj.retain(|name, _| !PRIVATE.contains(&name.as_str()));
                }
                jwk
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The algorithms of the published (asymmetric) keys, signer first.
    pub fn public_algorithms(&self) -> Vec<&'static str> {
        let mut algs = Vec::new();
        for key in self.keys.iter().filter(|k| k.public_jwk.is_some()) {
            let name = match key.alg {
                Algorithm::EdDSA => "EdDSA",
                Algorithm::ES256 => "ES256",
                _ => continue,
            };
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        algs
    }

    /// A new JWK Set secret with one key of `alg` (HS256 or EdDSA), for `portcullis init`
    /// and rotation. Returns the JSON text to store.
    pub fn generate_jwk(alg: Algorithm) -> Result<serde_json::Value, KeyRingError> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut id = [0u8; 12];
        rand::fill(&mut id);
        let kid = b64.encode(id);
        match alg {
            Algorithm::HS256 => {
                let mut k = [0u8; 32];
                rand::fill(&mut k);
                Ok(
                    serde_json::json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64.encode(k)}),
                )
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| KeyRingError("key generation failed".into()))?;
                let seed = pair
                    .seed()
                    .map_err(|_| KeyRingError("key generation failed".into()))?;
                let d = seed
                    .as_be_bytes()
                    .map_err(|_| KeyRingError("key generation failed".into()))?;
                Ok(serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                    "x": b64.encode(pair.public_key().as_ref()), "d": b64.encode(d.as_ref()),
                }))
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyRingError("key generation failed".into()))?;
                let d = pair
                    .private_key()
                    .as_be_bytes()
                    .map_err(|_| KeyRingError("key generation failed".into()))?;
                let point = pair.public_key().as_ref().to_vec();
                if point.len() != 65 {
                    return Err(KeyRingError("unexpected P-256 public key encoding".into()));
                }
                Ok(serde_json::json!({
                    "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                    "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65]), "d": b64.encode(d.as_ref()),
                }))
            }
            other => Err(KeyRingError(format!("cannot generate {other:?} keys"))),
        }
    }
}

/// Most keys a ring keeps through rotations (the oldest beyond it are dropped).
pub const MAX_RING_KEYS: usize = 10;

/// The secret's keys as JWK objects (a plain secret becomes one `oct` JWK with the same
/// derived kid, so tokens it signed keep verifying after a rotation).
fn jwk_list(current: &str) -> Result<Vec<serde_json::Value>, KeyRingError> {
    let ring = KeyRing::from_secret(current)?;
    let trimmed = current.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|_| KeyRingError("the secret is not a valid JWK Set".into()))?;
        Ok(value["keys"].as_array().cloned().unwrap_or_default())
    } else {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(vec![serde_json::json!({
            "kty": "oct", "kid": ring.signer().kid, "alg": "HS256", "k": b64.encode(trimmed.as_bytes()),
        })])
    }
}

/// The secret text after a rotation: a new key of `alg` first (it signs from now on), then the
/// keys in force (they keep verifying). Returns the new text and the new kid.
pub fn rotated_secret(current: &str, alg: Algorithm) -> Result<(String, String), KeyRingError> {
    let new = KeyRing::generate_jwk(alg)?;
    let kid = new["kid"].as_str().unwrap_or_default().to_owned();
    let mut keys = vec![new];
    keys.extend(jwk_list(current)?);
    keys.truncate(MAX_RING_KEYS);
    let text = serde_json::json!({ "keys": keys }).to_string();
    KeyRing::from_secret(&text)?;
    Ok((text, kid))
}

/// The secret text without key `kid` (tokens it signed stop verifying). The signing key
/// cannot be retired: rotate first.
pub fn retired_secret(current: &str, kid: &str) -> Result<String, KeyRingError> {
    let ring = KeyRing::from_secret(current)?;
    if ring.signer().kid == kid {
        return Err(KeyRingError(
            "that key signs new tokens: rotate before retiring it".into(),
        ));
    }
    if ring.find(kid).is_none() {
        return Err(KeyRingError(format!("no key {kid:?} in the ring")));
    }
    let keys: Vec<serde_json::Value> = jwk_list(current)?
        .into_iter()
        .filter(|k| k["kid"] != kid)
        .collect();
    let text = serde_json::json!({ "keys": keys }).to_string();
    KeyRing::from_secret(&text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "0123456789abcdef0123456789abcdef-plain-secret";

    #[test]
    fn plain_string_is_one_hs256_key_with_a_stable_kid() {
        let ring = KeyRing::from_secret(PLAIN).unwrap();
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.signer().alg, Algorithm::HS256);
        assert!(ring.signer().kid.starts_with("hs-"));
        assert_eq!(
            ring.signer().kid,
            KeyRing::from_secret(PLAIN).unwrap().signer().kid
        );
        assert_ne!(
            ring.signer().kid,
            KeyRing::from_secret(&format!("{PLAIN}x"))
                .unwrap()
                .signer()
                .kid
        );
        assert!(!ring.signer().kid.contains("plain"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(KeyRing::from_secret("too-short").is_err());
        assert!(
            KeyRing::from_secret(r#"{"keys":[{"kty":"oct","kid":"a","k":"c2hvcnQ"}]}"#).is_err()
        );
    }

    #[test]
    fn jwk_set_first_key_signs_every_key_verifies() {
        let a = KeyRing::generate_jwk(Algorithm::EdDSA).unwrap();
        let b = KeyRing::generate_jwk(Algorithm::HS256).unwrap();
        let c = KeyRing::generate_jwk(Algorithm::ES256).unwrap();
        let set = serde_json::json!({"keys": [a, b, c.clone()]}).to_string();
        let ring = KeyRing::from_secret(&set).unwrap();
        assert_eq!(ring.keys().len(), 3);
        let es = ring.find(c["kid"].as_str().unwrap()).unwrap();
        assert_eq!(es.alg, Algorithm::ES256);
        assert!(es.public_jwk().unwrap().get("d").is_none());
        assert_eq!(ring.signer().alg, Algorithm::EdDSA);
        assert_eq!(ring.signer().kid, a["kid"].as_str().unwrap());
        assert_eq!(
            ring.find(b["kid"].as_str().unwrap()).unwrap().alg,
            Algorithm::HS256
        );
        assert!(ring.find("nope").is_none());
        let public = ring.signer().public_jwk().unwrap();
        assert!(public.get("d").is_none());
        assert_eq!(public["x"], a["x"]);
        assert!(
            ring.find(b["kid"].as_str().unwrap())
                .unwrap()
                .public_jwk()
                .is_none()
        );
    }

    #[test]
    fn malformed_sets_are_refused_without_echoing_material() {
        for bad in [
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
            r#"{"keys":[{"kty":"RSA","kid":"r","n":"x","e":"AQAB"}]}"#,
            r#"{"keys":[{"kty":"oct","kid":"a","alg":"HS512","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AAAA","d":"BBBB"}]}"#,
            r#"{"keys": "#,
            r#"{"keys":[{"kty":"oct","kid":"e","use":"enc","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
            r#"{"keys":[{"kty":"oct","kid":"e","key_ops":["encrypt"],"k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
        ] {
            let err = KeyRing::from_secret(bad).unwrap_err();
            assert!(!err.to_string().contains("MDEy"), "{err}");
        }
        let dup = KeyRing::generate_jwk(Algorithm::HS256).unwrap();
        let set = serde_json::json!({"keys": [dup.clone(), dup]}).to_string();
        assert!(
            KeyRing::from_secret(&set)
                .unwrap_err()
                .0
                .contains("duplicate kid")
        );
    }

    #[test]
    fn public_jwks_never_carry_private_members() {
        let set = serde_json::json!({"keys": [
            KeyRing::generate_jwk(Algorithm::EdDSA).unwrap(),
            KeyRing::generate_jwk(Algorithm::ES256).unwrap(),
            KeyRing::generate_jwk(Algorithm::HS256).unwrap(),
        ]});
        let ring = KeyRing::from_secret(&set.to_string()).unwrap();
        let public = ring.public_jwks();
        let keys = public["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "the HS256 key is never published");
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(key.get(private).is_none(), "{private} served in {key}");
            }
            assert_eq!(key["use"], "sig");
        }
        let text = public.to_string();
        for secret in set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k.get("d").or(k.get("k")))
        {
            assert!(!text.contains(secret.as_str().unwrap()));
        }
        assert_eq!(ring.public_algorithms(), vec!["EdDSA", "ES256"]);
        assert!(
            KeyRing::from_secret(PLAIN).unwrap().public_jwks()["keys"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rotation_puts_a_new_signer_first_and_keeps_the_old_keys() {
        let (text, kid) = rotated_secret(PLAIN, Algorithm::EdDSA).unwrap();
        let ring = KeyRing::from_secret(&text).unwrap();
        let old = KeyRing::from_secret(PLAIN).unwrap();
        assert_eq!(ring.signer().kid, kid);
        assert_eq!(ring.signer().alg, Algorithm::EdDSA);
        // the plain secret lives on as an oct key with the same kid
        assert_eq!(ring.find(&old.signer().kid).unwrap().alg, Algorithm::HS256);
        let (again, kid2) = rotated_secret(&text, Algorithm::ES256).unwrap();
        let ring = KeyRing::from_secret(&again).unwrap();
        assert_eq!(
            ring.keys()
                .iter()
                .map(|k| k.kid.clone())
                .collect::<Vec<_>>(),
            vec![kid2, kid.clone(), old.signer().kid.clone()]
        );
        // bounded
        let mut text = again;
        for _ in 0..15 {
            text = rotated_secret(&text, Algorithm::HS256).unwrap().0;
        }
        assert_eq!(
            KeyRing::from_secret(&text).unwrap().keys().len(),
            MAX_RING_KEYS
        );
    }

    #[test]
    fn retire_removes_a_verifier_but_never_the_signer() {
        let (text, kid) = rotated_secret(PLAIN, Algorithm::EdDSA).unwrap();
        let old_kid = KeyRing::from_secret(PLAIN).unwrap().signer().kid.clone();
        assert!(retired_secret(&text, &kid).is_err());
        assert!(retired_secret(&text, "nope").is_err());
        let retired = KeyRing::from_secret(&retired_secret(&text, &old_kid).unwrap()).unwrap();
        assert_eq!(retired.keys().len(), 1);
        assert!(retired.find(&old_kid).is_none());
    }

    #[test]
    fn debug_shows_no_material() {
        let ring = KeyRing::from_secret(PLAIN).unwrap();
        let printed = format!("{ring:?}");
        assert!(!printed.contains("0123456789"), "{printed}");
        assert!(printed.contains("HS256"));
    }
}
