//! The TOTP second factor over HTTP through `cargo lambda watch` (the `mfa`, `login` and
//! `refresh` functions) and scripts/gateway.py (the authorizer's `mfa` route rule: the stack
//! sets `AUTHORIZER_ROUTE_RULES=GET /admin/*=mfa`). Every code is computed by pyotp from PyPI
//! (tests/interop/totp.py), an implementation independent of shared/src/totp.rs.
//!
//! No test sleeps. The server accepts a code for a step later than the last one it accepted,
//! within ±1 step (30 s) of its clock. So each user here gets at most two codes accepted: the
//! confirmation's (pyotp's code for now) and one for the next step (pyotp's code for
//! now + 30 s, inside the skew and later than the first, whichever step the clock has reached
//! meanwhile). Recovery codes have no steps.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use portcullis::store::{User, UserStore};
use portcullis_tests::{
    RequestCounter, cli, clients, function_url, https_client, remember_secret, unique_email,
    watch_env,
};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";
/// The issuer the stack's authenticator URIs carry (`MFA_ISSUER` is unset: the default).
const ISSUER: &str = "Portcullis";
/// The recovery codes' alphabet (no 0/o/1/l).
const RECOVERY_ALPHABET: &str = "abcdefghijkmnpqrstuvwxyz23456789";

// ---------------------------------------------------------------------------------------
// support

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Run tests/interop/totp.py (pyotp) with the venv's python; its stdout.
fn pyotp(args: &[String]) -> String {
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/interop/totp.py"))
        .args(args)
        .output()
        .expect("run tests/interop/totp.py with .venv/bin/python");
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// pyotp's codes for the base32 `secret` at each Unix time.
fn pyotp_codes(secret: &str, times: &[i64]) -> Vec<String> {
    let mut args = vec![secret.to_owned()];
    args.extend(times.iter().map(i64::to_string));
    let codes: Vec<String> = pyotp(&args).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), times.len());
    for code in &codes {
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "pyotp gave a code that is not six digits"
        );
        remember_secret(code);
    }
    codes
}

fn pyotp_code(secret: &str, at: i64) -> String {
    pyotp_codes(secret, &[at]).remove(0)
}

/// What pyotp (as an authenticator app) reads from an `otpauth://` URI, and its code at `at`.
fn pyotp_uri(uri: &str, at: i64) -> Value {
    let parsed: Value = serde_json::from_str(&pyotp(&[
        "--uri".to_owned(),
        uri.to_owned(),
        at.to_string(),
    ]))
    .unwrap();
    remember_secret(parsed["code"].as_str().unwrap());
    parsed
}

/// A six-digit code that is wrong for `secret` at every step within ±2 of now (pyotp says).
fn wrong_code(secret: &str) -> String {
    let t = now();
    let near = pyotp_codes(secret, &[t - 60, t - 30, t, t + 30, t + 60]);
    let code = (0..)
        .map(|n: u32| format!("{:06}", (123_456 + n * 7_919) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap();
    remember_secret(&code);
    code
}

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("not JSON ({}): {:?}", self.status, self.text))
    }

    /// The names of the cookies it sets.
    fn cookie_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

async fn send_with(client: &reqwest::Client, req: reqwest::RequestBuilder) -> Reply {
    let resp = client.execute(req.build().unwrap()).await.unwrap();
    let reply = Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    };
    if let Ok(body) = serde_json::from_str::<Value>(&reply.text) {
        for token in ["accessToken", "refreshToken"] {
            if let Some(t) = body["data"]["tokens"][token].as_str() {
                remember_secret(t);
            }
        }
        if let Some(c) = body["error"]["challenge"].as_str() {
            remember_secret(c);
        }
        if let Some(s) = body["data"]["secret"].as_str() {
            remember_secret(s);
        }
        if let Some(u) = body["data"]["otpauthUri"].as_str() {
            remember_secret(u);
        }
        for code in body["data"]["recoveryCodes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            remember_secret(code.as_str().unwrap_or_default());
        }
    }
    reply
}

/// `METHOD url` with an optional JSON body and an optional bearer, on `client`.
async fn call_with(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Reply {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send_with(client, req).await
}

async fn call(method: Method, url: &str, body: Option<&Value>, bearer: Option<&str>) -> Reply {
    call_with(&https_client(), method, url, body, bearer).await
}

/// The `mfa` function's URL for `path` (e.g. `auth/mfa/totp`).
fn mfa_url(path: &str) -> String {
    format!("{}{path}", function_url("mfa"))
}

/// The gateway's URL for `path` (e.g. `/admin/whoami`).
fn gateway_url(path: &str) -> String {
    let gateway = std::env::var("PORTCULLIS_TEST_GATEWAY_URL").expect("the stack's gateway");
    format!("{gateway}{path}")
}

/// Exact status and `{"error": {"code": code, "message": <string>}}`, nothing else.
#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "expected {code}: {}", reply.text);
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
    assert_eq!(reply.headers["content-type"], "application/json");
}

/// The payload of a JWT, unverified.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// `amr` and `acr` of a token.
fn amr_acr(jwt: &str) -> (Value, Value) {
    let c = claims(jwt);
    (c["amr"].clone(), c["acr"].clone())
}

fn password_amr() -> (Value, Value) {
    (json!(["pwd"]), json!("aal1"))
}

fn otp_amr() -> (Value, Value) {
    (json!(["pwd", "otp", "mfa"]), json!("aal2"))
}

fn recovery_amr() -> (Value, Value) {
    (json!(["pwd", "mfa"]), json!("aal2"))
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

/// A login's 200: exactly `{"data": {"user", "tokens"}}` with the user's view and the four
/// token fields. Returns the tokens.
#[track_caller]
fn assert_logged_in(reply: &Reply, user: &Value) -> Tokens {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"].as_object().unwrap().len(), 2, "{body}");
    assert_eq!(&body["data"]["user"], user);
    let tokens = &body["data"]["tokens"];
    assert_eq!(tokens.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    Tokens {
        access: tokens["accessToken"].as_str().unwrap().to_owned(),
        refresh: tokens["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// A user created with the CLI: their email and the login answer's `user` view.
struct Account {
    email: String,
    id: String,
}

impl Account {
    fn create(tag: &str) -> Self {
        let email = unique_email(tag);
        let id = portcullis_tests::cli_create_user(&email, PASSWORD, "user");
        Self { email, id }
    }

    fn view(&self) -> Value {
        json!({"id": self.id, "email": self.email, "role": "user"})
    }

    async fn password_step_with(&self, client: &reqwest::Client) -> Reply {
        remember_secret(PASSWORD);
        call_with(
            client,
            Method::POST,
            &function_url("login"),
            Some(&json!({"email": self.email, "password": PASSWORD})),
            None,
        )
        .await
    }

    async fn password_step(&self) -> Reply {
        self.password_step_with(&https_client()).await
    }

    /// Log in with the password alone: 200 and tokens that say so.
    async fn login(&self) -> Tokens {
        let tokens = assert_logged_in(&self.password_step().await, &self.view());
        assert_eq!(amr_acr(&tokens.access), password_amr());
        assert_eq!(amr_acr(&tokens.refresh), password_amr());
        tokens
    }

    /// The password step of a user with TOTP: exactly 401 `MFA_REQUIRED` with a challenge,
    /// no tokens, no cookies. Returns the challenge.
    async fn challenge(&self) -> String {
        challenge_of(&self.password_step().await)
    }

    async fn stored(&self) -> User {
        let aws = clients(&RequestCounter::default()).await;
        UserStore::new(aws.dynamodb, watch_env()["USERS_TABLE"].clone())
            .get(&self.email)
            .await
            .unwrap()
            .unwrap()
    }
}

#[track_caller]
fn challenge_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 401, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let error = body["error"].as_object().unwrap();
    assert_eq!(error.len(), 3, "{body}");
    assert_eq!(error["code"], "MFA_REQUIRED");
    assert!(error["message"].is_string());
    assert!(
        reply.cookie_names().is_empty(),
        "{:?}",
        reply.cookie_names()
    );
    let challenge = error["challenge"].as_str().unwrap().to_owned();
    remember_secret(&challenge);
    challenge
}

/// `POST /auth/login/mfa` with the challenge and `factor` (`{"code"}` or `{"recoveryCode"}`).
async fn second_step_with(client: &reqwest::Client, challenge: &str, factor: Value) -> Reply {
    let mut body = factor;
    body["challenge"] = json!(challenge);
    call_with(
        client,
        Method::POST,
        &mfa_url("auth/login/mfa"),
        Some(&body),
        None,
    )
    .await
}

async fn second_step(challenge: &str, factor: Value) -> Reply {
    second_step_with(&https_client(), challenge, factor).await
}

fn code(c: &str) -> Value {
    json!({"code": c})
}

fn recovery(c: &str) -> Value {
    remember_secret(c);
    json!({"recoveryCode": c})
}

async fn enrol(access: &str) -> Reply {
    call(Method::POST, &mfa_url("auth/mfa/totp"), None, Some(access)).await
}

async fn confirm(access: &str, c: &str) -> Reply {
    call(
        Method::POST,
        &mfa_url("auth/mfa/totp/confirm"),
        Some(&code(c)),
        Some(access),
    )
    .await
}

async fn remove(access: &str, factor: &Value) -> Reply {
    call(
        Method::DELETE,
        &mfa_url("auth/mfa/totp"),
        Some(factor),
        Some(access),
    )
    .await
}

/// TOTP as enabled: the secret (base32) and the recovery codes.
struct Enabled {
    secret: String,
    recovery_codes: Vec<String>,
}

/// Enrol and confirm with pyotp's code for now.
async fn enable(access: &str) -> Enabled {
    let reply = enrol(access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let secret = reply.json()["data"]["secret"].as_str().unwrap().to_owned();
    let reply = confirm(access, &pyotp_code(&secret, now())).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let recovery_codes = reply.json()["data"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enabled {
        secret,
        recovery_codes,
    }
}

/// pyotp's code for the next step: accepted (within the skew) after the confirmation's.
fn next_code(secret: &str) -> String {
    pyotp_code(secret, now() + 30)
}

/// A user with TOTP enabled, logged in with both factors: the account, the secret and codes,
/// and the tokens (amr `otp`, acr `aal2`).
async fn mfa_user(tag: &str) -> (Account, Enabled, Tokens) {
    let account = Account::create(tag);
    let enabled = enable(&account.login().await.access).await;
    let challenge = account.challenge().await;
    let reply = second_step(&challenge, code(&next_code(&enabled.secret))).await;
    let tokens = assert_logged_in(&reply, &account.view());
    assert_eq!(amr_acr(&tokens.access), otp_amr());
    (account, enabled, tokens)
}

async fn refresh(token: &str) -> Tokens {
    let reply = call(
        Method::POST,
        &function_url("refresh"),
        Some(&json!({"refreshToken": token})),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["data"].as_object().unwrap().len(), 1, "{body}");
    let tokens = &body["data"]["tokens"];
    Tokens {
        access: tokens["accessToken"].as_str().unwrap().to_owned(),
        refresh: tokens["refreshToken"].as_str().unwrap().to_owned(),
    }
}

async fn gateway_get(path: &str, bearer: Option<&str>) -> Reply {
    call(Method::GET, &gateway_url(path), None, bearer).await
}

// ---------------------------------------------------------------------------------------
// 1. enrolment

#[tokio::test]
async fn enrolment_with_a_pyotp_code_activates_totp_and_answers_ten_recovery_codes() {
    let account = Account::create("mfa-enrol");
    let tokens = account.login().await;

    assert_error(
        &call(Method::POST, &mfa_url("auth/mfa/totp"), None, None).await,
        401,
        "MISSING_TOKEN",
    );
    assert_error(
        &confirm(&tokens.access, "123456").await,
        409,
        "MFA_NOT_PENDING",
    );

    // Enrolment: the secret, the URI an authenticator app scans, and its QR code.
    let first = enrol(&tokens.access).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.headers["cache-control"], "no-store");
    let body = first.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let data = body["data"].as_object().unwrap();
    assert_eq!(data.len(), 3, "{body}");
    let secret1 = data["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret1.len(), 32, "160 bits in base32");
    assert!(
        secret1
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    let uri = data["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"));
    assert!(uri.contains(&format!("secret={secret1}")));
    assert!(uri.contains(&format!("issuer={ISSUER}")));
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/{ISSUER}:{}?secret={secret1}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30",
            account.email.replace('@', "%40")
        )
    );
    // ... which pyotp reads as an authenticator app would.
    let t = now();
    let parsed = pyotp_uri(uri, t);
    assert_eq!(
        parsed,
        json!({
            "type": "TOTP",
            "secret": secret1,
            "name": account.email,
            "issuer": ISSUER,
            "digits": 6,
            "interval": 30,
            "digest": "sha1",
            "code": pyotp_code(&secret1, t),
        })
    );
    let qr = data["qr"].as_str().unwrap();
    let svg = base64::engine::general_purpose::STANDARD
        .decode(
            qr.strip_prefix("data:image/svg+xml;base64,")
                .expect("an SVG data URI"),
        )
        .unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains("<svg"), "{svg:.80}");
    assert!(svg.trim_end().ends_with("</svg>"));

    // A second enrolment before confirming replaces the pending secret.
    let second = enrol(&tokens.access).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let secret2 = second.json()["data"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret2, secret1);
    let stored = account.stored().await;
    assert_eq!(stored.mfa.totp_secret, None);
    let pending = stored.mfa.totp_pending.expect("a pending secret");
    assert!(!pending.contains(&secret2) && !pending.contains(&secret1));
    let t = now();
    let valid2 = pyotp_codes(&secret2, &[t - 30, t, t + 30]);
    let old = pyotp_code(&secret1, t);
    if !valid2.contains(&old) {
        // (one chance in ~300 000 that the replaced secret's code is also the new one's)
        assert_error(
            &confirm(&tokens.access, &old).await,
            401,
            "INVALID_MFA_CODE",
        );
    }
    assert_error(
        &confirm(&tokens.access, &wrong_code(&secret2)).await,
        401,
        "INVALID_MFA_CODE",
    );
    assert_error(
        &call(
            Method::POST,
            &mfa_url("auth/mfa/totp/confirm"),
            Some(&json!({})),
            Some(&tokens.access),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    );

    // pyotp's code confirms: ten distinct recovery codes, shown this once.
    let t = now();
    let reply = confirm(&tokens.access, &pyotp_code(&secret2, t)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"].as_object().unwrap().len(), 1, "{body}");
    let codes: Vec<String> = body["data"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for c in &codes {
        let (a, b) = c.split_once('-').expect("xxxxx-xxxxx");
        assert_eq!((a.len(), b.len()), (5, 5));
        assert!(
            a.chars()
                .chain(b.chars())
                .all(|ch| RECOVERY_ALPHABET.contains(ch))
        );
    }

    // Stored: the secret sealed, the codes as digests, the confirmation's step.
    let stored = account.stored().await;
    let sealed = stored.mfa.totp_secret.clone().expect("active");
    assert!(!sealed.contains(&secret2));
    assert_eq!(stored.mfa.totp_pending, None);
    assert_eq!(stored.mfa.totp_last_step, Some(t.div_euclid(30)));
    assert_eq!(stored.mfa.recovery_codes.len(), 10);
    for digest in &stored.mfa.recovery_codes {
        assert!(!codes.iter().any(|c| digest.contains(c.as_str())));
        assert!(!codes.iter().any(|c| digest.contains(&c.replace('-', ""))));
    }

    // Active now: no second enrolment, nothing to confirm.
    assert_error(&enrol(&tokens.access).await, 409, "MFA_ALREADY_ENABLED");
    assert_error(
        &confirm(&tokens.access, &pyotp_code(&secret2, now())).await,
        409,
        "MFA_NOT_PENDING",
    );
}

// ---------------------------------------------------------------------------------------
// 2. login needs the second step; a replayed code is refused

#[tokio::test]
async fn an_mfa_user_logs_in_in_two_steps_and_a_replayed_code_is_refused() {
    let account = Account::create("mfa-login");
    let password_reply = account.password_step().await;
    let first = assert_logged_in(&password_reply, &account.view());
    let enabled = enable(&first.access).await;

    // The password step: no tokens, a challenge.
    let reply = account.password_step().await;
    let challenge = challenge_of(&reply);
    let c = claims(&challenge);
    assert_eq!(c["token_use"], "mfa");
    assert_eq!(c["sub"], json!(account.id));
    assert_eq!(
        c["aud"],
        json!(format!("{}#mfa", watch_env()["JWT_AUDIENCE"]))
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    // The challenge is no access token.
    assert_error(&enrol(&challenge).await, 401, "INVALID_TOKEN");
    assert_error(
        &second_step(&challenge, json!({})).await,
        400,
        "VALIDATION_ERROR",
    );

    // The second step with pyotp's code (the next step's: the confirmation used this one).
    let accepted = next_code(&enabled.secret);
    let reply = second_step(&challenge, code(&accepted)).await;
    let tokens = assert_logged_in(&reply, &account.view());
    assert_eq!(reply.cookie_names(), password_reply.cookie_names());
    assert_eq!(amr_acr(&tokens.access), otp_amr());
    assert_eq!(amr_acr(&tokens.refresh), otp_amr());
    assert_eq!(claims(&tokens.access)["sub"], json!(account.id));
    assert_eq!(account.stored().await.failed_attempts, 0);

    // Refresh keeps how the user signed in.
    let refreshed = refresh(&tokens.refresh).await;
    assert_eq!(amr_acr(&refreshed.access), otp_amr());
    assert_eq!(amr_acr(&refreshed.refresh), otp_amr());
    let again = refresh(&refreshed.refresh).await;
    assert_eq!(amr_acr(&again.access), otp_amr());

    // Replay: the code just accepted, with a fresh challenge, is refused and counts as a
    // failed attempt.
    let challenge = account.challenge().await;
    assert_error(
        &second_step(&challenge, code(&accepted)).await,
        401,
        "INVALID_MFA_CODE",
    );
    assert_eq!(account.stored().await.failed_attempts, 1);
}

// ---------------------------------------------------------------------------------------
// 3. wrong codes lock the account

#[tokio::test]
async fn five_wrong_codes_lock_the_account_even_for_the_right_code_and_the_password() {
    let account = Account::create("mfa-lock");
    let enabled = enable(&account.login().await.access).await;
    let challenge = account.challenge().await;
    let wrong = wrong_code(&enabled.secret);
    for attempt in 1..=5 {
        let reply = second_step(&challenge, code(&wrong)).await;
        assert_error(&reply, 401, "INVALID_MFA_CODE");
        assert_eq!(account.stored().await.failed_attempts, attempt);
    }
    let right = next_code(&enabled.secret);
    let reply = second_step(&challenge, code(&right)).await;
    assert_error(&reply, 423, "ACCOUNT_LOCKED");
    let retry: i64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1800).contains(&retry), "{retry}");
    let reply = account.password_step().await;
    assert_error(&reply, 423, "ACCOUNT_LOCKED");

    // Unlocked by the operator: the right code (never accepted) finishes a new login.
    let out = cli(&["user", "unlock", "--email", &account.email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let challenge = account.challenge().await;
    let tokens = assert_logged_in(
        &second_step(&challenge, code(&right)).await,
        &account.view(),
    );
    assert_eq!(amr_acr(&tokens.access), otp_amr());
}

// ---------------------------------------------------------------------------------------
// 4. recovery codes and challenges work once

#[tokio::test]
async fn a_recovery_code_works_once_and_a_challenge_once() {
    let account = Account::create("mfa-recovery");
    let enabled = enable(&account.login().await.access).await;
    let rc = &enabled.recovery_codes;

    let challenge1 = account.challenge().await;
    assert_error(
        &second_step(
            &challenge1,
            json!({"code": "123456", "recoveryCode": rc[0]}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    );
    let tokens = assert_logged_in(
        &second_step(&challenge1, recovery(&rc[0])).await,
        &account.view(),
    );
    assert_eq!(amr_acr(&tokens.access), recovery_amr());
    assert_eq!(amr_acr(&tokens.refresh), recovery_amr());
    assert_eq!(
        amr_acr(&refresh(&tokens.refresh).await.access),
        recovery_amr()
    );

    // The challenge that just succeeded is spent.
    assert_error(
        &second_step(&challenge1, recovery(&rc[1])).await,
        401,
        "INVALID_MFA_CHALLENGE",
    );
    // The recovery code that just succeeded is spent.
    let challenge2 = account.challenge().await;
    assert_error(
        &second_step(&challenge2, recovery(&rc[0])).await,
        401,
        "INVALID_MFA_CODE",
    );
    // A newer login voids the older challenge.
    let challenge3 = account.challenge().await;
    assert_error(
        &second_step(&challenge2, recovery(&rc[1])).await,
        401,
        "INVALID_MFA_CHALLENGE",
    );
    // A recovery code is compared as typed: case, dashes and spaces do not matter.
    let typed = format!(" {} ", rc[1].to_uppercase().replace('-', ""));
    let tokens = assert_logged_in(
        &second_step(&challenge3, recovery(&typed)).await,
        &account.view(),
    );
    assert_eq!(amr_acr(&tokens.access), recovery_amr());
    let stored = account.stored().await;
    assert_eq!(stored.mfa.recovery_codes.len(), 8);
    assert_eq!(
        stored.failed_attempts, 0,
        "a success clears the failure count"
    );
    assert_eq!(stored.mfa.challenge, None);
}

// ---------------------------------------------------------------------------------------
// 5. the authorizer's `mfa` route rule

#[tokio::test]
async fn the_admin_route_with_the_mfa_rule_refuses_a_password_token_and_admits_an_mfa_one() {
    let forbidden = json!({"message": "Forbidden"});
    let plain = Account::create("mfa-admin-pwd");
    let password_token = plain.login().await.access;
    let reply = gateway_get("/admin/whoami", Some(&password_token)).await;
    assert_eq!((reply.status, reply.json()), (403, forbidden.clone()));
    let reply = gateway_get("/admin/whoami", None).await;
    assert_eq!((reply.status, reply.json()), (403, forbidden.clone()));
    // The same token on a route without the rule.
    let reply = gateway_get("/whoami", Some(&password_token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json()["data"]["principal"],
        json!({
            "principalId": plain.id,
            "userId": plain.id,
            "email": plain.email,
            "role": "user",
            "scopes": "",
            "authType": "jwt",
            "mfa": "false",
        })
    );

    let (account, _, tokens) = mfa_user("mfa-admin-otp").await;
    let principal = json!({
        "principalId": account.id,
        "userId": account.id,
        "email": account.email,
        "role": "user",
        "scopes": "",
        "authType": "jwt",
        "mfa": "true",
    });
    for path in ["/admin/whoami", "/whoami"] {
        let reply = gateway_get(path, Some(&tokens.access)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json(), json!({"data": {"principal": principal}}));
    }
    // A refreshed token still has the second factor.
    let refreshed = refresh(&tokens.refresh).await;
    let reply = gateway_get("/admin/whoami", Some(&refreshed.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["data"]["principal"]["mfa"], "true");

    // A recovery-code login is a second factor too.
    let (recovering, enabled, _) = mfa_user("mfa-admin-rc").await;
    let challenge = recovering.challenge().await;
    let tokens = assert_logged_in(
        &second_step(&challenge, recovery(&enabled.recovery_codes[0])).await,
        &recovering.view(),
    );
    let reply = gateway_get("/admin/whoami", Some(&tokens.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["data"]["principal"]["mfa"], "true");
}

// ---------------------------------------------------------------------------------------
// 6. removing the second factor

#[tokio::test]
async fn removing_totp_needs_a_code_or_a_recovery_code_and_login_is_password_only_again() {
    let account = Account::create("mfa-remove");
    let access = account.login().await.access;
    assert_error(
        &remove(&access, &code("123456")).await,
        409,
        "MFA_NOT_ENABLED",
    );
    let enabled = enable(&access).await;
    let rc = &enabled.recovery_codes;
    assert_error(
        &remove(&access, &code(&wrong_code(&enabled.secret))).await,
        401,
        "INVALID_MFA_CODE",
    );
    assert_error(&remove(&access, &json!({})).await, 400, "VALIDATION_ERROR");
    assert_error(
        &remove(&access, &recovery("aaaaa-bbbbb")).await,
        401,
        "INVALID_MFA_CODE",
    );
    // A wrong code here is no login failure.
    assert_eq!(account.stored().await.failed_attempts, 0);
    account.challenge().await;

    let reply = remove(&access, &recovery(&rc[0])).await;
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    let stored = account.stored().await;
    assert_eq!(stored.mfa, Default::default());
    assert_error(
        &remove(&access, &recovery(&rc[1])).await,
        409,
        "MFA_NOT_ENABLED",
    );
    account.login().await;

    // Enabled again (a new secret, new recovery codes), then removed with a current code.
    let again = enable(&access).await;
    assert_ne!(again.secret, enabled.secret);
    account.challenge().await;
    assert_error(
        &remove(&access, &recovery(&rc[1])).await,
        401,
        "INVALID_MFA_CODE",
    );
    let reply = remove(&access, &code(&next_code(&again.secret))).await;
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    let tokens = account.login().await;
    assert_eq!(amr_acr(&tokens.access), password_amr());
}

// ---------------------------------------------------------------------------------------
// 7. the operator's reset

#[tokio::test]
async fn the_cli_reset_removes_the_second_factor_with_an_audit_line() {
    let (account, _, _) = mfa_user("mfa-reset").await;
    let out = cli(&["user", "mfa", "reset", "--email", &account.email], None);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("second factor of {} removed\n", account.email)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let audit: Value = serde_json::from_str(lines[0]).unwrap();
    let at = audit["at"].as_str().unwrap().to_owned();
    assert!(at.len() >= 20 && at.ends_with('Z'), "{at}");
    assert_eq!(
        audit,
        json!({"audit": "mfa_reset", "userId": account.id, "email": account.email, "hadMfa": true, "at": at})
    );
    assert_eq!(account.stored().await.mfa, Default::default());
    let tokens = account.login().await;
    assert_eq!(amr_acr(&tokens.access), password_amr());

    // Again, as JSON: nothing was left to remove.
    let out = cli(
        &["--json", "user", "mfa", "reset", "--email", &account.email],
        None,
    );
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer,
        json!({"email": account.email, "id": account.id, "mfaReset": true, "hadMfa": false})
    );
    let audit: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(audit["hadMfa"], false);

    let out = cli(
        &[
            "user",
            "mfa",
            "reset",
            "--email",
            &unique_email("mfa-nobody"),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("portcullis: no user "));
}

// ---------------------------------------------------------------------------------------
// 8. what the second step costs (printed, not asserted)

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test]
async fn latency_of_password_login_and_mfa_login() {
    const TRIES: usize = 10;
    let client = https_client();

    // Password only: one user, TRIES logins (after one to warm the function).
    let plain = Account::create("mfa-lat-pwd");
    plain.login().await;
    let mut password = Vec::new();
    for _ in 0..TRIES {
        let started = Instant::now();
        let reply = plain.password_step_with(&client).await;
        password.push(started.elapsed());
        assert_logged_in(&reply, &plain.view());
    }

    // MFA: one user per try (each can have one more code accepted: the next step's), every
    // code computed before the clock starts; one MFA login first to warm the function.
    mfa_user("mfa-lat-warm").await;
    let mut users = Vec::new();
    for _ in 0..TRIES {
        let account = Account::create("mfa-lat-otp");
        let enabled = enable(&account.login().await.access).await;
        users.push((account, enabled.secret));
    }
    let (mut first_steps, mut second_steps, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for (account, secret) in &users {
        let c = next_code(secret);
        let started = Instant::now();
        let reply = account.password_step_with(&client).await;
        let first = started.elapsed();
        let challenge = challenge_of(&reply);
        let second_started = Instant::now();
        let reply = second_step_with(&client, &challenge, code(&c)).await;
        let second = second_started.elapsed();
        totals.push(started.elapsed());
        let tokens = assert_logged_in(&reply, &account.view());
        assert_eq!(amr_acr(&tokens.access), otp_amr());
        first_steps.push(first);
        second_steps.push(second);
    }
    let (p, f, s, t) = (
        median(password),
        median(first_steps),
        median(second_steps),
        median(totals),
    );
    println!(
        "login latency through cargo lambda watch (median of {TRIES}, ms): password-only login {:.1}; \
         MFA login {:.1} = password step {:.1} + /auth/login/mfa {:.1}; MFA adds {:.1}",
        ms(p),
        ms(t),
        ms(f),
        ms(s),
        ms(t) - ms(p)
    );
}
