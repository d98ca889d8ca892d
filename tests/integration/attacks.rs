//! Attack tokens against the authorizer and refresh (issue 6).
//!
//! Every case is a hand-built token (base64url(header).base64url(payload).signature, signed
//! with `jsonwebtoken::crypto::sign` and a ring key where a valid signature is needed). Its
//! access flavour goes to the in-process [`Authorizer`] as a REST `TOKEN` event and must get
//! `Err(Failure::UNAUTHORIZED)`; its refresh flavour goes to `portcullis::session::refresh`
//! and must get `Err(Error::InvalidRefreshToken)`. Before each refresh call a live refresh
//! record for exactly that token string is stored, so the store alone would let it rotate:
//! only verification (or the user checks) can refuse it. Every call runs in its own task, so
//! a panic is reported as that case's failure. Positive controls (an untampered forged access
//! token is allowed, an untampered forged refresh token rotates, a token of exactly
//! `MAX_TOKEN_BYTES` is allowed) prove the forging itself is right.
//!
//! The world's ring holds an EdDSA key (the signer), an HS256 key and an ES256 key; attacks
//! use all three.
//! Cases per class (the test asserts that exactly these many cases ran, class by class):
//!
//! | class | cases |
//! |---|---|
//! | alg none (none/None/NONE/nOnE x empty/junk signature) | 8 |
//! | algorithm confusion (HS* keyed with a public key, alg/kid swaps) | 7 |
//! | kid: unknown, empty, missing, null, number, path, SQL, long, NUL, trailing space | 10 |
//! | tampered header | 5 |
//! | tampered payload | 5 |
//! | stripped signature | 3 |
//! | wrong signature length (truncated, extended) | 6 |
//! | expired | 6 |
//! | nbf in the future | 2 |
//! | iat in the future beyond leeway | 2 |
//! | wrong iss | 6 |
//! | wrong aud (each flavour's own; refresh tokens carry `AUD#refresh`) | 6 |
//! | aud array without ours | 3 |
//! | token type confusion (refresh as access, access as refresh, bad token_use) | 4 |
//! | unknown user (authorizer allows a signed token; refresh refuses) | 2 |
//! | disabled user (after the authorizer's revocation reload) | 1 |
//! | key removed from the ring | 2 |
//! | oversized (header > 4 KiB, total > 4 KiB) | 4 |
//! | non-base64url characters | 8 |
//! | duplicate claims or header members | 7 |
//! | crit header | 4 |
//! | jku / jwk / x5u headers | 5 |
//! | total | 106 |

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::Error;
use portcullis::authorizer::{Authorizer, Failure};
use portcullis::keys::{KeyRing, RingKey};
use portcullis::login::{Credentials, login};
use portcullis::session::refresh;
use portcullis::state::AppState;
use portcullis::store::{RefreshRecord, RefreshStatus, User};
use portcullis::token::{MAX_TOKEN_BYTES, TokenService, TokenUse};
use portcullis_tests::{World, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "Corr3ct-horse!";
const METHOD_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/whoami";
const FAMILY: &str = "fam_attacks";

type ClaimsEdit = dyn Fn(&mut Value);
type SignatureEdit = dyn Fn(&str) -> String;
/// The flavour's own audience -> the forged `aud` (`None`: no `aud` at all).
type AudEdit<'a> = dyn Fn(&str) -> Option<Value> + 'a;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `message.signature`, the signature made over the message bytes exactly as given.
fn sign_message(message: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
    format!("{message}.{sig}")
}

/// A compact JWS over header and payload TEXT (so duplicate members survive).
fn compact(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    sign_message(&format!("{}.{}", b64(header), b64(payload)), key, alg)
}

fn alg_name(alg: Algorithm) -> Value {
    serde_json::to_value(alg).unwrap()
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.splitn(3, '.');
    let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    (h.to_owned(), p.to_owned(), s.to_owned())
}

fn token_event(token: &str) -> Value {
    let mut ev: Value =
        serde_json::from_str(include_str!("../../events/authorizer-token.json")).unwrap();
    ev["authorizationToken"] = json!(format!("Bearer {token}"));
    ev["methodArn"] = json!(METHOD_ARN);
    ev
}

/// The table at the top of this file, class -> cases (without the total row).
fn documented() -> (BTreeMap<String, usize>, usize) {
    let mut rows = BTreeMap::new();
    let mut total = 0;
    for row in include_str!("attacks.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(n) = cells.get(1).and_then(|c| c.parse::<usize>().ok()) else {
            continue;
        };
        if cells[0] == "total" {
            total = n;
        } else {
            rows.insert(cells[0].to_owned(), n);
        }
    }
    (rows, total)
}

/// Short class keys used below -> the table's first column.
fn class_name(key: &str) -> String {
    let (rows, _) = documented();
    let matching: Vec<&String> = rows.keys().filter(|k| k.starts_with(key)).collect();
    assert_eq!(
        matching.len(),
        1,
        "table rows starting with {key:?}: {matching:?}"
    );
    matching[0].clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Authorizer: Unauthorized; refresh: InvalidRefreshToken.
    Refused,
    /// A token we signed for a user the store does not have: the authorizer trusts its
    /// signature (stateless, lives at most the access TTL), refresh looks the user up.
    AuthorizerAllows,
}

struct Lab {
    state: AppState,
    authz: Arc<Authorizer>,
    ed: RingKey,
    hs: RingKey,
    es: RingKey,
    user: User,
    leeway: i64,
    stored: HashSet<String>,
    ran: BTreeMap<String, usize>,
}

impl Lab {
    fn claims(&self, token_use: TokenUse) -> Value {
        let mut c = json!({
            "iss": self.state.tokens.issuer,
            "aud": self.state.tokens.audience_for(token_use),
            "sub": self.user.id,
            "exp": NOW + 600,
            "iat": NOW,
            "jti": portcullis::ids::new_id("jti"),
            "token_use": token_use,
            "email": self.user.email,
        });
        match token_use {
            TokenUse::Access => c["role"] = json!(self.user.role),
            TokenUse::Refresh => c["fam"] = json!(FAMILY),
            TokenUse::OAuth => {
                c["client_id"] = json!(self.user.id);
                c["scope"] = json!("");
            }
            TokenUse::Mfa => c["amr"] = json!(["pwd"]),
        }
        c
    }

    fn header(key: &RingKey) -> Value {
        json!({"alg": alg_name(key.alg), "typ": "JWT", "kid": key.kid})
    }

    fn sign(key: &RingKey, header: &Value, claims: &Value) -> String {
        compact(
            &header.to_string(),
            &claims.to_string(),
            key.encoding(),
            key.alg,
        )
    }

    /// Both flavours of a token made by `f` from a fresh claims template.
    fn both(&self, f: impl Fn(Value) -> String) -> (String, String) {
        (
            f(self.claims(TokenUse::Access)),
            f(self.claims(TokenUse::Refresh)),
        )
    }

    /// Both flavours signed by `key` after `edit` changed header and claims.
    fn edited(&self, key: &RingKey, edit: impl Fn(&mut Value, &mut Value)) -> (String, String) {
        self.both(|mut claims| {
            let mut header = Self::header(key);
            edit(&mut header, &mut claims);
            Self::sign(key, &header, &claims)
        })
    }

    async fn authorize(&self, token: &str, now: i64) -> Result<Value, Failure> {
        let authz = self.authz.clone();
        let event = token_event(token);
        tokio::spawn(async move { authz.handle(&event, now).await })
            .await
            .unwrap_or_else(|e| panic!("the authorizer panicked on {token:.200?}: {e}"))
    }

    /// Store a live refresh record for exactly this token string, then refresh with it.
    async fn refresh(&mut self, token: &str, user_id: &str, now: i64) -> Result<(), Error> {
        let hash = portcullis::ids::digest(token);
        if self.stored.insert(hash.clone()) {
            let record = RefreshRecord {
                token_hash: hash,
                user_id: user_id.to_owned(),
                email: self.user.email.clone(),
                family_id: FAMILY.to_owned(),
                status: RefreshStatus::Active,
                created_at: NOW,
                expires_at: NOW + 86_400,
                spent_at: None,
            };
            self.state.refresh_tokens.put(&record).await.unwrap();
        }
        let state = self.state.clone();
        let owned = token.to_owned();
        tokio::spawn(async move {
            refresh(&state, &owned, "203.0.113.9", now)
                .await
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|e| panic!("refresh panicked on {token:.200?}: {e}"))
    }

    async fn case(&mut self, class: &str, name: &str, tokens: (String, String)) {
        let user_id = self.user.id.clone();
        self.case_expect(class, name, tokens, Expect::Refused, &user_id)
            .await;
    }

    async fn case_expect(
        &mut self,
        class: &str,
        name: &str,
        (access, refresh_token): (String, String),
        expect: Expect,
        record_user: &str,
    ) {
        let class = class_name(class);
        *self.ran.entry(class.clone()).or_default() += 1;
        let out = self.authorize(&access, NOW).await;
        match expect {
            Expect::Refused => assert_eq!(
                out,
                Err(Failure::UNAUTHORIZED),
                "{class} / {name}: authorizer did not refuse {access:.300?}"
            ),
            Expect::AuthorizerAllows => {
                assert!(out.is_ok(), "{class} / {name}: authorizer answered {out:?}")
            }
        }
        let out = self.refresh(&refresh_token, record_user, NOW).await;
        assert!(
            matches!(out, Err(Error::InvalidRefreshToken)),
            "{class} / {name}: refresh answered {out:?} for {refresh_token:.300?}"
        );
    }
}

async fn lab() -> Lab {
    let w = World::new(&[]).await;
    // The world's signing secret becomes [EdDSA (signs), HS256], and the state reads it the
    // way a container does, so a key-ring re-read (an unknown kid triggers one) sees the same.
    let ed = KeyRing::generate_jwk(Algorithm::EdDSA).unwrap();
    let hs = KeyRing::generate_jwk(Algorithm::HS256).unwrap();
    let es = KeyRing::generate_jwk(Algorithm::ES256).unwrap();
    let set = json!({"keys": [ed, hs, es]}).to_string();
    w.state
        .aws
        .secrets
        .put_secret_value()
        .secret_id(&w.state.config.signing_keys_secret_id)
        .secret_string(&set)
        .send()
        .await
        .expect("store the signing keys");
    w.state
        .reload_keys(NOW)
        .await
        .expect("re-read the signing keys");
    let ring = w.state.tokens.ring();
    assert_eq!(ring.keys().len(), 3);
    let user = w.user(&unique_email("attacks"), PASSWORD, "user").await;
    Lab {
        authz: Arc::new(Authorizer::new(w.state.clone())),
        leeway: w.state.tokens.leeway,
        state: w.state,
        ed: ring.keys()[0].clone(),
        hs: ring.keys()[1].clone(),
        es: ring.keys()[2].clone(),
        user,
        stored: HashSet::new(),
        ran: BTreeMap::new(),
    }
}

#[tokio::test]
async fn attack_tokens_are_refused_by_the_authorizer_and_refresh() {
    let mut lab = lab().await;
    let (ed, hs, es) = (lab.ed.clone(), lab.hs.clone(), lab.es.clone());
    assert_eq!(
        (ed.alg, hs.alg, es.alg),
        (Algorithm::EdDSA, Algorithm::HS256, Algorithm::ES256)
    );

    // ---- positive controls: the forging is right ----
    for key in [&ed, &hs, &es] {
        let good = Lab::sign(key, &Lab::header(key), &lab.claims(TokenUse::Access));
        let out = lab
            .authorize(&good, NOW)
            .await
            .expect("control access token");
        assert_eq!(out["principalId"], json!(lab.user.id));
        let good = Lab::sign(key, &Lab::header(key), &lab.claims(TokenUse::Refresh));
        let user_id = lab.user.id.clone();
        lab.refresh(&good, &user_id, NOW)
            .await
            .expect("control refresh token");
    }

    // ---- alg none ----
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in ["", "c2lnbmF0dXJl"] {
            let tokens = lab.both(|claims| {
                let header = json!({"alg": alg, "typ": "JWT", "kid": ed.kid});
                format!(
                    "{}.{}.{sig}",
                    b64(header.to_string()),
                    b64(claims.to_string())
                )
            });
            lab.case("alg none", &format!("{alg} sig={sig:?}"), tokens)
                .await;
        }
    }

    // ---- algorithm confusion ----
    let public = ed.public_jwk().unwrap().clone();
    let x_text = public["x"].as_str().unwrap().to_owned();
    let x_raw = URL_SAFE_NO_PAD.decode(&x_text).unwrap();
    for (name, secret, alg) in [
        (
            "HS256 keyed with the raw EdDSA x",
            x_raw.clone(),
            Algorithm::HS256,
        ),
        (
            "HS256 keyed with the x text",
            x_text.clone().into_bytes(),
            Algorithm::HS256,
        ),
        (
            "HS256 keyed with the public JWK",
            public.to_string().into_bytes(),
            Algorithm::HS256,
        ),
        (
            "HS384 keyed with the raw EdDSA x",
            x_raw.clone(),
            Algorithm::HS384,
        ),
    ] {
        let key = EncodingKey::from_secret(&secret).unwrap();
        let tokens = lab.both(|claims| {
            let header = json!({"alg": alg_name(alg), "typ": "JWT", "kid": ed.kid});
            compact(&header.to_string(), &claims.to_string(), &key, alg)
        });
        lab.case("algorithm confusion", name, tokens).await;
    }
    // A genuine Ed25519 signature by a ring key, filed under the HS256 key's kid.
    let tokens = lab.both(|claims| {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": hs.kid});
        Lab::sign(&ed, &header, &claims)
    });
    lab.case(
        "algorithm confusion",
        "EdDSA signature under the HS256 kid",
        tokens,
    )
    .await;
    // HS256 keyed with the P-256 public point (SEC1, 0x04 || x || y) under the ES256 kid.
    let es_public = es.public_jwk().unwrap();
    let mut point = vec![0x04];
    for member in ["x", "y"] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(es_public[member].as_str().unwrap())
                .unwrap(),
        );
    }
    let key = EncodingKey::from_secret(&point).unwrap();
    let tokens = lab.both(|claims| {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": es.kid});
        compact(
            &header.to_string(),
            &claims.to_string(),
            &key,
            Algorithm::HS256,
        )
    });
    lab.case(
        "algorithm confusion",
        "HS256 keyed with the ES256 public point",
        tokens,
    )
    .await;
    // A genuine ES256 signature by a ring key, filed under the EdDSA key's kid.
    let tokens = lab.both(|claims| {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": ed.kid});
        Lab::sign(&es, &header, &claims)
    });
    lab.case(
        "algorithm confusion",
        "ES256 signature under the EdDSA kid",
        tokens,
    )
    .await;

    // ---- kid ----
    let long_kid = "k".repeat(3_000);
    let kids: [(&str, Option<Value>); 10] = [
        ("unknown", Some(json!("no-such-kid"))),
        ("empty", Some(json!(""))),
        ("missing", None),
        ("null", Some(Value::Null)),
        ("number", Some(json!(12345))),
        ("path traversal", Some(json!("../../etc/passwd"))),
        ("sql injection", Some(json!("' OR 1=1 --"))),
        ("3000 characters", Some(json!(long_kid))),
        (
            "NUL-prefixed real kid",
            Some(json!(format!("\u{0}{}", ed.kid))),
        ),
        (
            "real kid with a trailing space",
            Some(json!(format!("{} ", ed.kid))),
        ),
    ];
    for (name, kid) in kids {
        let tokens = lab.edited(&ed, |h, _| match &kid {
            Some(k) => h["kid"] = k.clone(),
            None => {
                h.as_object_mut().unwrap().remove("kid");
            }
        });
        lab.case("kid", name, tokens).await;
    }

    // ---- tampered header (original signature kept unless said) ----
    let retag = |token: &str, f: &dyn Fn(&mut Value)| {
        let (h, p, s) = parts(token);
        let mut header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        f(&mut header);
        format!("{}.{p}.{s}", b64(header.to_string()))
    };
    let valid =
        |lab: &Lab, key: &RingKey| lab.both(|claims| Lab::sign(key, &Lab::header(key), &claims));
    let (a, r) = valid(&lab, &ed);
    let add_member = |h: &mut Value| h["x-admin"] = json!(true);
    lab.case(
        "tampered header",
        "extra member",
        (retag(&a, &add_member), retag(&r, &add_member)),
    )
    .await;
    let typ = |h: &mut Value| h["typ"] = json!("at+jwt");
    lab.case(
        "tampered header",
        "typ changed",
        (retag(&a, &typ), retag(&r, &typ)),
    )
    .await;
    let to_hs = |h: &mut Value| h["alg"] = json!("HS256");
    lab.case(
        "tampered header",
        "alg EdDSA -> HS256",
        (retag(&a, &to_hs), retag(&r, &to_hs)),
    )
    .await;
    let to_hs_kid = |h: &mut Value| h["kid"] = json!(hs.kid);
    lab.case(
        "tampered header",
        "kid switched to the other ring key",
        (retag(&a, &to_hs_kid), retag(&r, &to_hs_kid)),
    )
    .await;
    let (ha, hr) = valid(&lab, &hs);
    let transplant = |donor: &str, body: &str| {
        let (h, _, _) = parts(donor);
        let (_, p, s) = parts(body);
        format!("{h}.{p}.{s}")
    };
    lab.case(
        "tampered header",
        "HS256 header on an EdDSA token",
        (transplant(&ha, &a), transplant(&hr, &r)),
    )
    .await;

    // ---- tampered payload (signature kept) ----
    let rewrite = |token: &str, f: &dyn Fn(&mut Value)| {
        let (h, p, s) = parts(token);
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        f(&mut claims);
        format!("{h}.{}.{s}", b64(claims.to_string()))
    };
    let payload_edits: [(&str, &RingKey, &ClaimsEdit); 4] = [
        ("role escalated", &ed, &|c: &mut Value| {
            c["role"] = json!("admin")
        }),
        ("sub changed", &hs, &|c: &mut Value| {
            c["sub"] = json!("usr_someone_else")
        }),
        ("exp extended", &ed, &|c: &mut Value| {
            c["exp"] = json!(NOW + 10 * 365 * 86_400)
        }),
        ("email changed", &hs, &|c: &mut Value| {
            c["email"] = json!("admin@example.com")
        }),
    ];
    for (name, key, f) in payload_edits {
        let (a, r) = valid(&lab, key);
        lab.case("tampered payload", name, (rewrite(&a, f), rewrite(&r, f)))
            .await;
    }
    let (a1, r1) = valid(&lab, &ed);
    let (a2, r2) = valid(&lab, &ed);
    let splice = |sig_from: &str, payload_from: &str| {
        let (h, _, s) = parts(sig_from);
        let (_, p, _) = parts(payload_from);
        format!("{h}.{p}.{s}")
    };
    lab.case(
        "tampered payload",
        "payload of another token, same key",
        (splice(&a1, &a2), splice(&r1, &r2)),
    )
    .await;

    // ---- stripped signature ----
    let (a, r) = valid(&lab, &ed);
    let strip = |t: &str, tail: &str| {
        let (h, p, _) = parts(t);
        format!("{h}.{p}{tail}")
    };
    for (name, tail) in [
        ("empty signature", "."),
        ("no signature part", ""),
        ("extra dot", ".."),
    ] {
        lab.case(
            "stripped signature",
            name,
            (strip(&a, tail), strip(&r, tail)),
        )
        .await;
    }

    // ---- wrong signature length ----
    let resig = |t: &str, f: &dyn Fn(&str) -> String| {
        let (h, p, s) = parts(t);
        format!("{h}.{p}.{}", f(&s))
    };
    let signature_edits: [(&str, &RingKey, &SignatureEdit); 6] = [
        ("truncated by one character", &ed, &|s: &str| {
            s[..s.len() - 1].to_owned()
        }),
        ("truncated to half", &ed, &|s: &str| {
            s[..s.len() / 2].to_owned()
        }),
        ("truncated to one byte", &hs, &|s: &str| s[..2].to_owned()),
        ("extended by one byte", &hs, &|s: &str| format!("{s}AA")),
        ("extended by one character", &ed, &|s: &str| format!("{s}A")),
        ("signature doubled", &hs, &|s: &str| format!("{s}{s}")),
    ];
    for (name, key, f) in signature_edits {
        let (a, r) = valid(&lab, key);
        lab.case("wrong signature length", name, (resig(&a, f), resig(&r, f)))
            .await;
    }

    // ---- times ----
    let leeway = lab.leeway;
    let set = |name: &'static str, v: Value| {
        move |_: &mut Value, c: &mut Value| {
            c[name] = v.clone();
        }
    };
    for (name, v) in [
        ("exp at the leeway boundary", json!(NOW - leeway)),
        ("exp an hour ago", json!(NOW - 3_600)),
        ("exp zero", json!(0)),
        ("exp i64::MIN", json!(i64::MIN)),
        ("exp beyond i64", json!(1e20)),
    ] {
        let tokens = lab.edited(&ed, set("exp", v));
        lab.case("expired", name, tokens).await;
    }
    let tokens = lab.edited(&hs, |_, c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    lab.case("expired", "exp missing", tokens).await;
    for (name, v) in [
        ("just beyond leeway", json!(NOW + leeway + 1)),
        ("an hour ahead", json!(NOW + 3_600)),
    ] {
        let tokens = lab.edited(&ed, set("nbf", v));
        lab.case("nbf", name, tokens).await;
    }
    for (name, v) in [
        ("just beyond leeway", json!(NOW + leeway + 1)),
        ("a day ahead", json!(NOW + 86_400)),
    ] {
        let tokens = lab.edited(&hs, set("iat", v));
        lab.case("iat", name, tokens).await;
    }

    // ---- iss / aud ----
    let iss = lab.state.tokens.issuer.clone();
    for (name, v) in [
        ("foreign", json!("https://evil.example")),
        ("empty", json!("")),
        ("trailing slash", json!(format!("{iss}/"))),
        ("upper case", json!(iss.to_uppercase())),
        ("missing", Value::Null),
        ("array with ours", json!([iss])),
    ] {
        let tokens = lab.edited(&ed, |_, c| {
            if v.is_null() {
                c.as_object_mut().unwrap().remove("iss");
            } else {
                c["iss"] = v.clone();
            }
        });
        lab.case("wrong iss", name, tokens).await;
    }
    // Each relative to the flavour's own audience (refresh tokens carry `AUD#refresh`).
    let access_aud = lab.state.tokens.audience_for(TokenUse::Access);
    let refresh_aud = lab.state.tokens.audience_for(TokenUse::Refresh);
    assert_ne!(access_aud, refresh_aud);
    let aud_edits: [(&str, &AudEdit<'_>); 6] = [
        ("foreign", &|_| Some(json!("other-api"))),
        ("empty", &|_| Some(json!(""))),
        ("trailing space", &|ours| Some(json!(format!("{ours} ")))),
        ("upper case", &|ours| Some(json!(ours.to_uppercase()))),
        ("missing", &|_| None),
        ("the other token type's audience", &|ours| {
            Some(json!(if ours == access_aud {
                &refresh_aud
            } else {
                &access_aud
            }))
        }),
    ];
    for (name, edit) in aud_edits {
        let tokens = lab.edited(&hs, |_, c| {
            let ours = c["aud"].as_str().unwrap().to_owned();
            match edit(&ours) {
                Some(v) => c["aud"] = v,
                None => {
                    c.as_object_mut().unwrap().remove("aud");
                }
            }
        });
        lab.case("wrong aud", name, tokens).await;
    }
    for (name, v) in [
        ("one foreign", json!(["other-api"])),
        ("empty", json!([])),
        ("two foreign", json!(["other-api", "x"])),
    ] {
        let tokens = lab.edited(&ed, set("aud", v));
        lab.case("aud array", name, tokens).await;
    }

    // ---- token type confusion ----
    let (access, refresh_token) = valid(&lab, &ed);
    lab.case(
        "token type",
        "refresh token as access, access token as refresh",
        (refresh_token, access),
    )
    .await;
    for (name, v) in [
        ("token_use id", json!("id")),
        ("token_use upper case", json!("ACCESS")),
        ("token_use missing", Value::Null),
    ] {
        let tokens = lab.edited(&hs, |_, c| {
            if v.is_null() {
                c.as_object_mut().unwrap().remove("token_use");
            } else {
                c["token_use"] = v.clone();
            }
        });
        lab.case("token type", name, tokens).await;
    }

    // ---- unknown user: signed by us, but the store has no such user ----
    let ghost = lab.edited(&ed, |_, c| {
        c["sub"] = json!("usr_never_existed");
        c["email"] = json!(unique_email("ghost"));
    });
    lab.case_expect(
        "unknown user",
        "user never existed",
        ghost,
        Expect::AuthorizerAllows,
        "usr_never_existed",
    )
    .await;
    let wrong_sub = lab.edited(&ed, |_, c| c["sub"] = json!("usr_not_this_email"));
    lab.case_expect(
        "unknown user",
        "real email, another sub",
        wrong_sub,
        Expect::AuthorizerAllows,
        "usr_not_this_email",
    )
    .await;

    // ---- disabled user (`portcullis user disable`): after the revocation reload ----
    {
        let email = unique_email("disabled");
        let victim = portcullis::admin::create_user(
            &lab.state.users,
            &lab.state.hashing,
            &lab.state.config.password_rules,
            &email,
            "user",
            PASSWORD,
            NOW - 100,
        )
        .await
        .unwrap();
        let creds = Credentials {
            email: email.clone(),
            password: PASSWORD.into(),
        };
        let tokens = login(&lab.state, &creds, "203.0.113.9", NOW)
            .await
            .unwrap()
            .tokens;
        // A fresh authorizer container that has already loaded its revocation set.
        let authz = Arc::new(Authorizer::new(lab.state.clone()));
        let before = std::mem::replace(&mut lab.authz, authz);
        assert!(lab.authorize(&tokens.access_token, NOW).await.is_ok());
        assert!(lab.state.users.set_disabled(&email, true).await.unwrap());
        let config = &lab.state.config;
        lab.state
            .revoked
            .revoke_user(
                &victim.id,
                NOW + 1,
                config.access_token_ttl + config.jwt_leeway,
            )
            .await
            .unwrap();
        let after_reload = NOW + config.revocation_refresh + 1;
        let class = class_name("disabled user");
        *lab.ran.entry(class.clone()).or_default() += 1;
        assert_eq!(
            lab.authorize(&tokens.access_token, after_reload).await,
            Err(Failure::UNAUTHORIZED),
            "{class}: access token after the revocation reload"
        );
        let state = lab.state.clone();
        let rt = tokens.refresh_token.clone();
        let out =
            tokio::spawn(async move { refresh(&state, &rt, "ip", NOW + 1).await.map(|_| ()) })
                .await
                .expect("refresh panicked");
        assert!(
            matches!(out, Err(Error::InvalidRefreshToken)),
            "{class}: refresh answered {out:?}"
        );
        lab.authz = before;
    }

    // ---- a key removed from the ring ----
    for alg in [Algorithm::HS256, Algorithm::EdDSA] {
        let retired = KeyRing::generate_jwk(alg).unwrap();
        let old_ring = KeyRing::from_secret(&json!({"keys": [retired]}).to_string()).unwrap();
        let old = TokenService::new(
            Arc::new(old_ring.clone()),
            lab.state.tokens.issuer.clone(),
            lab.state.tokens.audience.clone(),
            900,
            3600,
            lab.leeway,
        );
        let user = &lab.user;
        let access = old
            .issue_access(&user.id, &user.email, &user.role, NOW)
            .unwrap()
            .token;
        let refresh_token = old
            .issue_refresh(&user.id, &user.email, FAMILY, NOW)
            .unwrap()
            .token;
        // While the ring still held it, the same tokens verified.
        assert!(old.verify(&access, TokenUse::Access, NOW).is_ok());
        lab.case("key removed", &format!("{alg:?}"), (access, refresh_token))
            .await;
    }

    // ---- oversized ----
    let pad_header = |n: usize| lab.edited(&ed, move |h, _| h["pad"] = json!("h".repeat(n)));
    let tokens = pad_header(4_200);
    assert!(parts(&tokens.0).0.len() > 4_096);
    lab.case("oversized", "header over 4 KiB", tokens).await;
    let padded = |lab: &Lab, n: usize, u: TokenUse| {
        let mut c = lab.claims(u);
        c["pad"] = json!("p".repeat(n));
        Lab::sign(&ed, &Lab::header(&ed), &c)
    };
    // Exactly MAX_TOKEN_BYTES is allowed (control); one byte more is refused.
    let exact = |lab: &Lab, len: usize, u: TokenUse| {
        let mut c = lab.claims(u);
        c["pad"] = json!("");
        let mut h = Lab::header(&ed);
        h["pad"] = json!("");
        for hp in 0..4 {
            h["pad"] = json!("h".repeat(hp));
            for n in 0..MAX_TOKEN_BYTES {
                c["pad"] = json!("p".repeat(n));
                let t = Lab::sign(&ed, &h, &c);
                if t.len() == len {
                    return t;
                }
                if t.len() > len {
                    break;
                }
            }
        }
        panic!("no token of exactly {len} bytes");
    };
    let at_limit = exact(&lab, MAX_TOKEN_BYTES, TokenUse::Access);
    assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
    assert!(
        lab.authorize(&at_limit, NOW).await.is_ok(),
        "a token of exactly MAX_TOKEN_BYTES"
    );
    let tokens = (
        exact(&lab, MAX_TOKEN_BYTES + 1, TokenUse::Access),
        exact(&lab, MAX_TOKEN_BYTES + 1, TokenUse::Refresh),
    );
    lab.case("oversized", "total one byte over 4 KiB", tokens)
        .await;
    let tokens = (
        padded(&lab, 5_000, TokenUse::Access),
        padded(&lab, 5_000, TokenUse::Refresh),
    );
    lab.case("oversized", "payload over 4 KiB", tokens).await;
    let tokens = (
        padded(&lab, 64 * 1024, TokenUse::Access),
        padded(&lab, 64 * 1024, TokenUse::Refresh),
    );
    lab.case("oversized", "64 KiB", tokens).await;

    // ---- non-base64url characters (signature valid over the raw message) ----
    // JSON text whose standard base64 has `==` padding: trailing spaces to length 1 (mod 3).
    let pad_to_one = |mut text: String| {
        while text.len() % 3 != 1 {
            text.push(' ');
        }
        text
    };
    let raw = |h: String, p: String| sign_message(&format!("{h}.{p}"), ed.encoding(), ed.alg);
    let hdr = Lab::header(&ed).to_string();
    let tokens = lab.both(|c| {
        let h = STANDARD.encode(pad_to_one(hdr.clone()));
        assert!(h.ends_with("=="));
        raw(h, b64(c.to_string()))
    });
    lab.case("non-base64url", "padded header", tokens).await;
    let tokens = lab.both(|c| {
        let p = STANDARD.encode(pad_to_one(c.to_string()));
        assert!(p.ends_with("=="));
        raw(b64(&hdr), p)
    });
    lab.case("non-base64url", "padded payload", tokens).await;
    let tokens = lab.both(|mut c| {
        c["note"] = json!("~~~~~~");
        let p = STANDARD_NO_PAD.encode(c.to_string());
        assert!(p.contains('+'));
        raw(b64(&hdr), p)
    });
    lab.case(
        "non-base64url",
        "payload in the standard alphabet (+)",
        tokens,
    )
    .await;
    let tokens = lab.both(|c| {
        let p = b64(c.to_string());
        raw(b64(&hdr), format!("{} {}", &p[..10], &p[10..]))
    });
    lab.case("non-base64url", "space inside the payload", tokens)
        .await;
    let tokens = lab.both(|c| {
        let p = b64(c.to_string());
        raw(b64(&hdr), format!("{}\n{}", &p[..10], &p[10..]))
    });
    lab.case("non-base64url", "newline inside the payload", tokens)
        .await;
    let tokens = lab.both(|c| format!("{}=", Lab::sign(&ed, &Lab::header(&ed), &c)));
    lab.case("non-base64url", "signature with = padding", tokens)
        .await;
    let tokens = lab.both(|c| {
        let t = Lab::sign(&ed, &Lab::header(&ed), &c);
        format!("{}\u{e9}", &t[..t.len() - 1])
    });
    lab.case("non-base64url", "non-ASCII in the signature", tokens)
        .await;
    // The signature re-encoded in the standard alphabet; retried (new jti) until it differs.
    let tokens = lab.both(|mut c| {
        for _ in 0..1_000 {
            c["jti"] = json!(portcullis::ids::new_id("jti"));
            let (h, p, s) = parts(&Lab::sign(&ed, &Lab::header(&ed), &c));
            let standard = STANDARD_NO_PAD.encode(URL_SAFE_NO_PAD.decode(&s).unwrap());
            if standard != s {
                return format!("{h}.{p}.{standard}");
            }
        }
        panic!("no signature with - or _ in 1000 tries");
    });
    lab.case(
        "non-base64url",
        "signature in the standard alphabet (+/)",
        tokens,
    )
    .await;

    // ---- duplicates (JSON text, so both members reach the parser) ----
    let dup_claims = |lab: &Lab, first: &str, name: &str| {
        lab.both(|c| {
            // The forged value FIRST, the genuine one after it.
            let text = c.to_string();
            let dup = text.replacen('{', &format!("{{\"{name}\":{first},"), 1);
            compact(&hdr, &dup, ed.encoding(), ed.alg)
        })
    };
    for (name, forged) in [
        ("sub", json!("usr_admin").to_string()),
        ("token_use", json!("refresh").to_string()),
        ("exp", json!(NOW + 10 * 365 * 86_400).to_string()),
        ("iss", json!("https://evil.example").to_string()),
        ("aud", json!("other-api").to_string()),
    ] {
        let tokens = dup_claims(&lab, &forged, name);
        lab.case("duplicate", &format!("two {name}"), tokens).await;
    }
    for (name, forged) in [("kid", json!("no-such-kid")), ("alg", json!("none"))] {
        let tokens = lab.both(|c| {
            let h = hdr.replacen('{', &format!("{{\"{name}\":{forged},"), 1);
            compact(&h, &c.to_string(), ed.encoding(), ed.alg)
        });
        lab.case("duplicate", &format!("header with two {name}"), tokens)
            .await;
    }

    // ---- crit ----
    for (name, crit, extra) in [
        ("crit [exp]", json!(["exp"]), None),
        ("crit []", json!([]), None),
        (
            "crit [b64] with b64 false",
            json!(["b64"]),
            Some(("b64", json!(false))),
        ),
        ("crit as a string", json!("exp"), None),
    ] {
        let tokens = lab.edited(&ed, |h, _| {
            h["crit"] = crit.clone();
            if let Some((k, v)) = &extra {
                h[*k] = v.clone();
            }
        });
        lab.case("crit", name, tokens).await;
    }

    // ---- jku / jwk / x5u ----
    let attacker = KeyRing::from_secret(
        &json!({"keys": [KeyRing::generate_jwk(Algorithm::EdDSA).unwrap()]}).to_string(),
    )
    .unwrap();
    let evil = attacker.signer().clone();
    let evil_public = evil.public_jwk().unwrap().clone();
    for (name, member, value) in [
        ("jku", "jku", json!("https://evil.example/jwks.json")),
        ("x5u", "x5u", json!("https://evil.example/cert.pem")),
        ("jwk (our own public key)", "jwk", public.clone()),
    ] {
        // Signed by our real key: only the header member can refuse it.
        let tokens = lab.edited(&ed, |h, _| h[member] = value.clone());
        lab.case("jku", name, tokens).await;
    }
    let tokens = lab.both(|c| {
        let mut h = Lab::header(&ed);
        h["jwk"] = evil_public.clone();
        Lab::sign(&evil, &h, &c)
    });
    lab.case(
        "jku",
        "jwk of the attacker, signed by the attacker, our kid",
        tokens,
    )
    .await;
    let tokens = lab.both(|c| {
        let mut h = Lab::header(&evil);
        h["jku"] = json!("https://evil.example/jwks.json");
        Lab::sign(&evil, &h, &c)
    });
    lab.case("jku", "jku of the attacker, attacker kid", tokens)
        .await;

    // ---- the table at the top of this file is exactly what ran ----
    let (table, total) = documented();
    for (class, n) in &lab.ran {
        eprintln!("attacks: {n:>3}  {class}");
    }
    let ran: usize = lab.ran.values().sum();
    eprintln!("attacks: {ran:>3}  total");
    assert_eq!(lab.ran, table, "the class table at the top of attacks.rs");
    assert_eq!(ran, total, "the total row of the table");
    assert_eq!(table.values().sum::<usize>(), total);
}
