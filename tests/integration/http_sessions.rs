//! refresh and logout over real HTTP(S) requests to `cargo lambda watch` (cookie mode on,
//! reuse grace 10 s, concurrency 8), with the stored state read back from the emulator.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use portcullis::ids::digest;
use portcullis::store::{RefreshStatus, RefreshTokenStore, RevocationSet, RevokedStore};
use portcullis::token::{Claims, TokenService, TokenUse};
use portcullis_tests::{
    RequestCounter, clients, function_url, https_client, invoke_json, tls_function_url,
    unique_email, watch_env,
};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";
const REFRESH_COOKIE: &str = "__Secure-portcullis-refresh";
const CSRF_COOKIE: &str = "__Secure-portcullis-csrf";

// ---------------------------------------------------------------------------------------
// support

/// One HTTP answer.
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

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` value for cookie `name` (exactly one).
    fn set_cookie(&self, name: &str) -> String {
        let found: Vec<String> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.starts_with(&format!("{name}=")))
            .collect();
        assert_eq!(found.len(), 1, "{name} in {:?}", self.set_cookies());
        found[0].clone()
    }
}

/// The value part of a `Set-Cookie` header (`name=VALUE; ...`).
fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// `POST url` with a JSON body and an optional bearer.
async fn post_json(url: &str, body: &Value, bearer: Option<&str>) -> Reply {
    let mut req = https_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(req).await
}

async fn refresh_http(token: &str) -> Reply {
    post_json(
        &function_url("refresh"),
        &json!({"refreshToken": token}),
        None,
    )
    .await
}

/// Exact status, `{"error": {"code": code, "message": <string>}}` and nothing else.
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

/// A 200 refresh answer: exactly `{"data": {"tokens": {4 fields}}}`. Returns the tokens.
#[track_caller]
fn assert_tokens(reply: &Reply) -> Tokens {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"].as_object().unwrap().len(), 1, "{body}");
    let tokens = &body["data"]["tokens"];
    assert_eq!(tokens.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    let access = tokens["accessToken"].as_str().unwrap().to_owned();
    let refresh = tokens["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(access.split('.').count(), 3);
    assert_eq!(refresh.split('.').count(), 3);
    Tokens { access, refresh }
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

fn create_user(email: &str) -> String {
    portcullis_tests::cli_create_user(email, PASSWORD, "user")
}

/// Log in over plain HTTP; returns the tokens.
async fn login(email: &str) -> Tokens {
    let reply = post_json(
        &function_url("login"),
        &json!({"email": email, "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let tokens = &reply.json()["data"]["tokens"];
    Tokens {
        access: tokens["accessToken"].as_str().unwrap().to_owned(),
        refresh: tokens["refreshToken"].as_str().unwrap().to_owned(),
    }
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    clients(&RequestCounter::default()).await.dynamodb
}

async fn refresh_store() -> RefreshTokenStore {
    RefreshTokenStore::new(
        dynamodb().await,
        watch_env()["REFRESH_TOKENS_TABLE"].clone(),
    )
}

async fn status_of(token: &str) -> RefreshStatus {
    refresh_store()
        .await
        .get(&digest(token))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no stored item for the refresh token"))
        .status
}

async fn revocations() -> RevocationSet {
    RevokedStore::new(
        dynamodb().await,
        watch_env()["REVOKED_TOKENS_TABLE"].clone(),
    )
    .load(portcullis::state::now(), 100_000)
    .await
    .unwrap()
}

/// The watch's own token service (same key ring, issuer and audience).
async fn token_service() -> TokenService {
    let env = watch_env();
    let ring = clients(&RequestCounter::default())
        .await
        .load_key_ring(&env["SIGNING_KEYS_SECRET_ID"])
        .await
        .unwrap();
    TokenService::new(
        Arc::new(ring),
        env["JWT_ISSUER"].clone(),
        env["JWT_AUDIENCE"].clone(),
        900,
        604_800,
        5,
    )
}

async fn access_claims(token: &str) -> Claims {
    token_service()
        .await
        .verify(token, TokenUse::Access, portcullis::state::now())
        .unwrap()
}

async fn is_revoked(access_token: &str) -> bool {
    let claims = access_claims(access_token).await;
    revocations()
        .await
        .is_revoked(&claims.jti, &claims.sub, claims.iat)
}

// ---------------------------------------------------------------------------------------
// 1. refresh

#[tokio::test]
async fn refresh_rotates_with_the_contract_shape_and_cookies() {
    let email = unique_email("hs-rot");
    let user_id = create_user(&email);
    let first = login(&email).await;

    let reply = refresh_http(&first.refresh).await;
    let second = assert_tokens(&reply);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    let claims = access_claims(&second.access).await;
    assert_eq!(claims.sub, user_id);
    assert_eq!(claims.email.as_deref(), Some(email.as_str()));
    assert_eq!(claims.role.as_deref(), Some("user"));
    assert!(
        token_service()
            .await
            .verify(&second.refresh, TokenUse::Refresh, portcullis::state::now())
            .is_ok()
    );

    // cookie mode: the new refresh token and a CSRF token as cookies
    let refresh_cookie = reply.set_cookie(REFRESH_COOKIE);
    assert_eq!(cookie_value(&refresh_cookie), second.refresh);
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=604800",
    ] {
        assert!(
            refresh_cookie.split("; ").any(|a| a == attr),
            "{refresh_cookie} lacks {attr}"
        );
    }
    let csrf_cookie = reply.set_cookie(CSRF_COOKIE);
    assert!(cookie_value(&csrf_cookie).len() >= 16, "{csrf_cookie}");
    assert!(!csrf_cookie.contains("HttpOnly"), "the page must read it");
    assert!(csrf_cookie.contains("Secure") && csrf_cookie.contains("SameSite=Strict"));

    assert_eq!(status_of(&first.refresh).await, RefreshStatus::Spent);
    assert_eq!(status_of(&second.refresh).await, RefreshStatus::Active);

    // the spent token is refused (within the grace: no family revocation)
    assert_error(
        &refresh_http(&first.refresh).await,
        401,
        "INVALID_REFRESH_TOKEN",
    );
    assert_eq!(status_of(&second.refresh).await, RefreshStatus::Active);
    assert_tokens(&refresh_http(&second.refresh).await);
}

// ---------------------------------------------------------------------------------------
// 2. the race

#[tokio::test]
async fn fifty_concurrent_refreshes_through_watch_have_exactly_one_winner() {
    let email = unique_email("hs-race");
    create_user(&email);
    let first = login(&email).await;
    let client = https_client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let req = client
            .post(function_url("refresh"))
            .header("content-type", "application/json")
            .body(json!({"refreshToken": first.refresh}).to_string());
        tasks.push(tokio::spawn(send(req)));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    let mut others = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        match reply.status {
            200 => winners.push(assert_tokens(&reply)),
            401 if reply.json()["error"]["code"] == "INVALID_REFRESH_TOKEN" => losers += 1,
            _ => others.push(format!("{} {}", reply.status, reply.text)),
        }
    }
    assert_eq!(
        (winners.len(), losers, others.len()),
        (1, 49, 0),
        "{others:?}"
    );
    // a race is not reuse: the winner's token is live and still refreshes
    assert_eq!(status_of(&first.refresh).await, RefreshStatus::Spent);
    assert_eq!(status_of(&winners[0].refresh).await, RefreshStatus::Active);
    assert_tokens(&refresh_http(&winners[0].refresh).await);
}

// ---------------------------------------------------------------------------------------
// 3. reuse detection

#[tokio::test]
async fn reuse_after_the_grace_revokes_the_whole_family_over_http() {
    let email = unique_email("hs-reuse");
    create_user(&email);
    let first = login(&email).await;
    let other_session = login(&email).await;
    let second = assert_tokens(&refresh_http(&first.refresh).await);
    let third = assert_tokens(&refresh_http(&second.refresh).await);

    // within the grace: refused, nothing revoked
    assert_error(
        &refresh_http(&first.refresh).await,
        401,
        "INVALID_REFRESH_TOKEN",
    );
    assert_eq!(status_of(&third.refresh).await, RefreshStatus::Active);

    // make the first token's spending look an hour old (tests do not sleep)
    let now = portcullis::state::now();
    dynamodb()
        .await
        .update_item()
        .table_name(watch_env()["REFRESH_TOKENS_TABLE"].clone())
        .key("tokenHash", AttributeValue::S(digest(&first.refresh)))
        .update_expression("SET spentAt = :t")
        .condition_expression("attribute_exists(tokenHash)")
        .expression_attribute_values(":t", AttributeValue::N((now - 3600).to_string()))
        .send()
        .await
        .unwrap();

    // the stolen token comes back: refused, and the whole family dies
    assert_error(
        &refresh_http(&first.refresh).await,
        401,
        "INVALID_REFRESH_TOKEN",
    );
    for (name, token) in [
        ("first", &first.refresh),
        ("second", &second.refresh),
        ("third (newest)", &third.refresh),
    ] {
        assert_eq!(status_of(token).await, RefreshStatus::Revoked, "{name}");
    }
    assert_error(
        &refresh_http(&third.refresh).await,
        401,
        "INVALID_REFRESH_TOKEN",
    );
    // another login of the same user is another family
    assert_eq!(
        status_of(&other_session.refresh).await,
        RefreshStatus::Active
    );
    assert_tokens(&refresh_http(&other_session.refresh).await);
}

// ---------------------------------------------------------------------------------------
// 4. logout

#[tokio::test]
async fn logout_one_session_then_all_sessions() {
    let email = unique_email("hs-lo");
    let user_id = create_user(&email);
    let a = login(&email).await;
    let b = login(&email).await;
    let c = login(&email).await;

    let reply = post_json(
        &function_url("logout"),
        &json!({"refreshToken": a.refresh}),
        Some(&a.access),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(reply.text, "");
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(status_of(&a.refresh).await, RefreshStatus::Revoked);
    assert_error(
        &refresh_http(&a.refresh).await,
        401,
        "INVALID_REFRESH_TOKEN",
    );
    assert!(is_revoked(&a.access).await, "the access token is revoked");
    assert!(!is_revoked(&b.access).await, "other sessions keep theirs");
    assert!(!is_revoked(&c.access).await);

    // another session of the same user still refreshes
    let b2 = assert_tokens(&refresh_http(&b.refresh).await);
    assert_eq!(status_of(&c.refresh).await, RefreshStatus::Active);

    // log out everywhere
    let reply = post_json(
        &function_url("logout"),
        &json!({"allSessions": true}),
        Some(&b2.access),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(reply.text, "");
    for (name, token) in [("b2", &b2.refresh), ("c", &c.refresh)] {
        assert_eq!(status_of(token).await, RefreshStatus::Revoked, "{name}");
        assert_error(&refresh_http(token).await, 401, "INVALID_REFRESH_TOKEN");
    }
    for (name, token) in [("b", &b.access), ("b2", &b2.access), ("c", &c.access)] {
        assert!(is_revoked(token).await, "access token {name} revoked");
    }
    assert_eq!(access_claims(&c.access).await.sub, user_id);
}

/// LIBRARY DEFECT (reported to the lead, not fixed here): "log out everywhere" stores a
/// whole-second cutoff (`sessionsNotBefore = now`, revoked-user entry at `now`) and voids every
/// token with `iat <= cutoff`, so a login made AFTER the logout but within the same second
/// gets a refresh token that never refreshes (401 INVALID_REFRESH_TOKEN) and an access token
/// the authorizer treats as revoked. The loop tries (up to 6 times) to land a login in the
/// logout's second, which usually happens at once unless watch's login instances are busy;
/// whatever the timing, a login after the logout must work.
#[tokio::test]
async fn a_login_right_after_logout_of_all_sessions_works() {
    let email = unique_email("hs-relog");
    create_user(&email);
    let users =
        portcullis::store::UserStore::new(dynamodb().await, watch_env()["USERS_TABLE"].clone());
    let mut session = login(&email).await;
    let mut same_second = false;
    for _ in 0..6 {
        let reply = post_json(
            &function_url("logout"),
            &json!({"allSessions": true}),
            Some(&session.access),
        )
        .await;
        assert_eq!(reply.status, 204, "{}", reply.text);
        // the logout is complete: this login comes after it
        session = login(&email).await;
        let cutoff = users
            .get(&email)
            .await
            .unwrap()
            .unwrap()
            .sessions_not_before
            .expect("logout of all sessions sets a cutoff");
        let iat = access_claims(&session.access).await.iat;
        let revoked = is_revoked(&session.access).await;
        let reply = refresh_http(&session.refresh).await;
        assert_eq!(
            (revoked, reply.status),
            (false, 200),
            "login after logout-all (iat {iat}, cutoff {cutoff}): access token revoked? \
             refresh answered {}",
            reply.text
        );
        session = assert_tokens(&reply);
        if iat == cutoff {
            same_second = true;
            break;
        }
    }
    if !same_second {
        eprintln!(
            "note: no login landed in the logout's second; the defect case was not exercised"
        );
    }
}

#[tokio::test]
async fn user_b_cannot_log_out_user_a() {
    let (ea, eb) = (unique_email("hs-a"), unique_email("hs-b"));
    create_user(&ea);
    create_user(&eb);
    let a = login(&ea).await;
    let b = login(&eb).await;
    let reply = post_json(
        &function_url("logout"),
        &json!({"refreshToken": a.refresh}),
        Some(&b.access),
    )
    .await;
    assert_error(&reply, 401, "INVALID_REFRESH_TOKEN");
    assert_eq!(status_of(&a.refresh).await, RefreshStatus::Active);
    assert!(!is_revoked(&a.access).await);
    assert!(
        !is_revoked(&b.access).await,
        "a refused logout revokes nothing"
    );
    assert_tokens(&refresh_http(&a.refresh).await);
    assert_tokens(&refresh_http(&b.refresh).await);
}

// ---------------------------------------------------------------------------------------
// 5. every bad input

/// Wrong methods on `url` (with a body that would otherwise be valid): 405 + `Allow: POST`.
async fn assert_wrong_methods(url: &str, body: &Value, bearer: Option<&str>) {
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let mut req = https_client().request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let reply = send(req).await;
        assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(reply.headers["allow"], "POST", "{method}");
    }
}

/// `POST url` with a raw body and content type.
async fn post_raw(
    url: &str,
    body: String,
    content_type: Option<&str>,
    bearer: Option<&str>,
) -> Reply {
    let mut req = https_client().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(req).await
}

#[tokio::test]
async fn every_bad_refresh_input_gets_its_4xx_and_changes_nothing() {
    let email = unique_email("hs-badr");
    create_user(&email);
    let t = login(&email).await;
    let url = function_url("refresh");
    let valid = json!({"refreshToken": t.refresh}).to_string();
    let big = json!({"refreshToken": t.refresh, "pad": "x".repeat(20_000)}).to_string();
    let json_ct = Some("application/json");
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        ("{not json".into(), json_ct, 400, "VALIDATION_ERROR"),
        ("[]".into(), json_ct, 400, "VALIDATION_ERROR"),
        (
            json!([{"refreshToken": t.refresh}]).to_string(),
            json_ct,
            400,
            "VALIDATION_ERROR",
        ),
        (
            valid.clone(),
            Some("text/plain"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (valid.clone(), None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            valid.clone(),
            Some("application/x-www-form-urlencoded"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (big, json_ct, 413, "PAYLOAD_TOO_LARGE"),
        ("{}".into(), json_ct, 400, "MISSING_REFRESH_TOKEN"),
        ("".into(), json_ct, 400, "MISSING_REFRESH_TOKEN"),
        ("".into(), None, 400, "MISSING_REFRESH_TOKEN"),
        (
            json!({"refreshToken": null}).to_string(),
            json_ct,
            400,
            "MISSING_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": ""}).to_string(),
            json_ct,
            400,
            "MISSING_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": 5}).to_string(),
            json_ct,
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"refreshToken": [t.refresh]}).to_string(),
            json_ct,
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"refreshToken": t.access}).to_string(),
            json_ct,
            401,
            "INVALID_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": "garbage"}).to_string(),
            json_ct,
            401,
            "INVALID_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": format!("{}x", t.refresh)}).to_string(),
            json_ct,
            401,
            "INVALID_REFRESH_TOKEN",
        ),
    ];
    for (body, ct, status, code) in cases {
        let reply = post_raw(&url, body.clone(), ct, None).await;
        assert_eq!(
            (
                reply.status,
                reply.json()["error"]["code"].as_str().unwrap_or("-")
            ),
            (status, code),
            "body {body:.80} content-type {ct:?}"
        );
        assert_error(&reply, status, code);
        assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());
    }
    assert_wrong_methods(&url, &json!({"refreshToken": t.refresh}), None).await;

    assert_eq!(
        status_of(&t.refresh).await,
        RefreshStatus::Active,
        "unchanged"
    );
    assert!(!is_revoked(&t.access).await);
    // and the token was good all along
    assert_tokens(&refresh_http(&t.refresh).await);
}

/// body, content type, bearer, expected status, expected code.
type LogoutCase<'a> = (String, Option<&'a str>, Option<&'a str>, u16, &'a str);

#[tokio::test]
async fn every_bad_logout_input_gets_its_4xx_and_changes_nothing() {
    let email = unique_email("hs-badl");
    create_user(&email);
    let t = login(&email).await;
    let url = function_url("logout");
    let valid = json!({"refreshToken": t.refresh}).to_string();
    let big = json!({"refreshToken": t.refresh, "pad": "x".repeat(20_000)}).to_string();
    let json_ct = Some("application/json");
    let bearer = Some(t.access.as_str());
    let cases: Vec<LogoutCase> = vec![
        ("{not json".into(), json_ct, bearer, 400, "VALIDATION_ERROR"),
        ("[]".into(), json_ct, bearer, 400, "VALIDATION_ERROR"),
        (
            valid.clone(),
            Some("text/plain"),
            bearer,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (valid.clone(), None, bearer, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (big, json_ct, bearer, 413, "PAYLOAD_TOO_LARGE"),
        ("{}".into(), json_ct, bearer, 400, "MISSING_REFRESH_TOKEN"),
        ("".into(), None, bearer, 400, "MISSING_REFRESH_TOKEN"),
        (
            json!({"allSessions": false}).to_string(),
            json_ct,
            bearer,
            400,
            "MISSING_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": ""}).to_string(),
            json_ct,
            bearer,
            400,
            "MISSING_REFRESH_TOKEN",
        ),
        (
            json!({"allSessions": "yes"}).to_string(),
            json_ct,
            bearer,
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"allSessions": 1}).to_string(),
            json_ct,
            bearer,
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"refreshToken": 5}).to_string(),
            json_ct,
            bearer,
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"refreshToken": "garbage"}).to_string(),
            json_ct,
            bearer,
            401,
            "INVALID_REFRESH_TOKEN",
        ),
        (
            json!({"refreshToken": t.access}).to_string(),
            json_ct,
            bearer,
            401,
            "INVALID_REFRESH_TOKEN",
        ),
        // bearer problems
        (valid.clone(), json_ct, None, 401, "MISSING_TOKEN"),
        (
            json!({"allSessions": true}).to_string(),
            json_ct,
            None,
            401,
            "MISSING_TOKEN",
        ),
        ("{}".into(), json_ct, None, 401, "MISSING_TOKEN"),
        (
            valid.clone(),
            json_ct,
            Some("garbage"),
            401,
            "INVALID_TOKEN",
        ),
        (
            json!({"allSessions": true}).to_string(),
            json_ct,
            Some("garbage"),
            401,
            "INVALID_TOKEN",
        ),
        (
            valid.clone(),
            json_ct,
            Some(t.refresh.as_str()),
            401,
            "INVALID_TOKEN",
        ),
    ];
    for (body, ct, bearer, status, code) in cases {
        let reply = post_raw(&url, body.clone(), ct, bearer).await;
        assert_eq!(
            (
                reply.status,
                reply.json()["error"]["code"].as_str().unwrap_or("-")
            ),
            (status, code),
            "body {body:.80} content-type {ct:?} bearer {:?}",
            bearer.map(|b| &b[..b.len().min(12)])
        );
        assert_error(&reply, status, code);
        match code {
            "MISSING_TOKEN" => assert_eq!(reply.headers["www-authenticate"], "Bearer"),
            "INVALID_TOKEN" => assert_eq!(
                reply.headers["www-authenticate"],
                r#"Bearer error="invalid_token""#
            ),
            _ => {}
        }
        assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());
    }
    // an Authorization header of another scheme is no bearer at all
    let reply = send(
        https_client()
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", format!("Basic {}", t.access))
            .body(valid.clone()),
    )
    .await;
    assert_error(&reply, 401, "MISSING_TOKEN");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    assert_wrong_methods(&url, &json!({"refreshToken": t.refresh}), bearer).await;

    assert_eq!(
        status_of(&t.refresh).await,
        RefreshStatus::Active,
        "unchanged"
    );
    assert!(!is_revoked(&t.access).await, "access token not revoked");
    assert_tokens(&refresh_http(&t.refresh).await);
}

// ---------------------------------------------------------------------------------------
// 6. cookie mode over HTTPS

#[tokio::test]
async fn cookie_mode_refresh_needs_the_csrf_header_and_logout_clears_the_cookies() {
    let email = unique_email("hs-ck");
    create_user(&email);
    let login_reply = post_json(
        &tls_function_url("login"),
        &json!({"email": email, "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(login_reply.status, 200, "{}", login_reply.text);
    let login_body = login_reply.json();
    let refresh = cookie_value(&login_reply.set_cookie(REFRESH_COOKIE));
    let csrf = cookie_value(&login_reply.set_cookie(CSRF_COOKIE));
    assert_eq!(refresh, login_body["data"]["tokens"]["refreshToken"]);
    let access = login_body["data"]["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = tls_function_url("refresh");
    let both = format!("{REFRESH_COOKIE}={refresh}; {CSRF_COOKIE}={csrf}");

    // refused: no header, wrong or empty header, no CSRF cookie, a too-short CSRF token
    let refused: Vec<(Option<String>, Option<String>)> = vec![
        (Some(both.clone()), None),
        (Some(both.clone()), Some(format!("{csrf}x"))),
        (
            Some(both.clone()),
            Some("csrf_wrong_but_long_enough".into()),
        ),
        (Some(both.clone()), Some(String::new())),
        (
            Some(format!("{REFRESH_COOKIE}={refresh}")),
            Some(csrf.clone()),
        ),
        (
            Some(format!("{REFRESH_COOKIE}={refresh}; {CSRF_COOKIE}=short")),
            Some("short".into()),
        ),
    ];
    for (cookie, header) in refused {
        let mut req = https_client().post(&url);
        if let Some(c) = &cookie {
            req = req.header("cookie", c);
        }
        if let Some(h) = &header {
            req = req.header("x-csrf-token", h);
        }
        let reply = send(req).await;
        assert_eq!(reply.status, 403, "header {header:?}: {}", reply.text);
        assert_error(&reply, 403, "CSRF_REJECTED");
        assert!(reply.set_cookies().is_empty());
    }
    // only the CSRF header and cookie, no refresh cookie: nothing to refresh
    let reply = send(
        https_client()
            .post(&url)
            .header("cookie", format!("{CSRF_COOKIE}={csrf}"))
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_error(&reply, 400, "MISSING_REFRESH_TOKEN");
    assert_eq!(
        status_of(&refresh).await,
        RefreshStatus::Active,
        "nothing rotated"
    );

    // the cookie + matching header: rotated, new cookies
    let reply = send(
        https_client()
            .post(&url)
            .header("cookie", &both)
            .header("x-csrf-token", &csrf),
    )
    .await;
    let rotated = assert_tokens(&reply);
    let new_refresh = cookie_value(&reply.set_cookie(REFRESH_COOKIE));
    let new_csrf = cookie_value(&reply.set_cookie(CSRF_COOKIE));
    assert_eq!(new_refresh, rotated.refresh);
    assert_ne!(new_refresh, refresh);
    assert_ne!(new_csrf, csrf, "a new CSRF token with every rotation");
    assert_eq!(status_of(&refresh).await, RefreshStatus::Spent);
    assert_eq!(status_of(&new_refresh).await, RefreshStatus::Active);

    // logout by cookie: 204 and both cookies cleared
    let reply = send(
        https_client()
            .post(tls_function_url("logout"))
            .header("authorization", format!("Bearer {}", rotated.access))
            .header(
                "cookie",
                format!("{REFRESH_COOKIE}={new_refresh}; {CSRF_COOKIE}={new_csrf}"),
            ),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(reply.text, "");
    for name in [REFRESH_COOKIE, CSRF_COOKIE] {
        let cleared = reply.set_cookie(name);
        assert_eq!(cookie_value(&cleared), "", "{cleared}");
        assert!(cleared.split("; ").any(|a| a == "Max-Age=0"), "{cleared}");
    }
    assert!(reply.set_cookie(REFRESH_COOKIE).contains("Path=/auth"));
    assert_eq!(status_of(&new_refresh).await, RefreshStatus::Revoked);
    assert!(is_revoked(&rotated.access).await);
    assert!(
        !is_revoked(&access).await,
        "only the presented access token"
    );
}

// ---------------------------------------------------------------------------------------
// 7. the sample events with `cargo lambda invoke`

fn invoked_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a string body")).unwrap()
}

#[tokio::test]
async fn sample_events_with_fake_tokens_get_their_401s() {
    let response = invoke_json("refresh", "events/refresh.json");
    assert_eq!(response["statusCode"], 401, "{response}");
    let body = invoked_body(&response);
    assert_eq!(body["error"]["code"], "INVALID_REFRESH_TOKEN", "{body}");
    assert!(body["error"]["message"].is_string());

    let response = invoke_json("logout", "events/logout.json");
    assert_eq!(response["statusCode"], 401, "{response}");
    let body = invoked_body(&response);
    assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{body}");
    assert!(body["error"]["message"].is_string());
    assert_eq!(
        response["headers"]["www-authenticate"], r#"Bearer error="invalid_token""#,
        "{response}"
    );
}

#[tokio::test]
async fn sample_refresh_event_with_a_real_token_refreshes() {
    let email = unique_email("hs-inv");
    create_user(&email);
    let t = login(&email).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/events/refresh.json")).unwrap(),
    )
    .unwrap();
    event["body"] = json!({"refreshToken": t.refresh}).to_string().into();
    let path = std::env::temp_dir().join(format!(
        "portcullis-refresh-{}.json",
        portcullis::ids::new_id("ev")
    ));
    std::fs::write(&path, event.to_string()).unwrap();
    let response = invoke_json("refresh", path.to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    assert_eq!(response["statusCode"], 200, "{response}");
    let body = invoked_body(&response);
    let tokens = &body["data"]["tokens"];
    assert_eq!(tokens.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    let new_refresh = tokens["refreshToken"].as_str().unwrap();
    assert_eq!(status_of(&t.refresh).await, RefreshStatus::Spent);
    assert_eq!(status_of(new_refresh).await, RefreshStatus::Active);
}
