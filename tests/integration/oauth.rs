//! The OAuth 2.0 machine side in-process against the emulator, with a fixed clock: the client
//! registry, the token endpoint (client credentials), introspection, revocation, the
//! authorizer's view of client tokens, and the DynamoDB requests each costs.

use base64::Engine as _;
use lambda_http::{Body, Request, Response};
use portcullis::authorizer::Authorizer;
use portcullis::oauth;
use portcullis::store::ClientRecord;
use portcullis::store::clients::{self, GRANT_CLIENT_CREDENTIALS};
use portcullis::token::TokenUse;
use portcullis_tests::{World, remember_secret};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

/// A confidential client as the tests hold it: the record and its secret.
#[derive(Clone)]
struct NewClient {
    secret: String,
    record: ClientRecord,
}

impl From<clients::NewClient> for NewClient {
    fn from(c: clients::NewClient) -> Self {
        Self {
            secret: c.secret.expect("a confidential client"),
            record: c.record,
        }
    }
}

async fn new_client(w: &World, scopes: &[&str], ttl: i64) -> NewClient {
    let new = clients::generate(
        "partner",
        vec![GRANT_CLIENT_CREDENTIALS.into()],
        scopes.iter().map(|s| s.to_string()).collect(),
        ttl,
        NOW - 3600,
    );
    let new = NewClient::from(new);
    remember_secret(&new.secret);
    w.state.clients.create(&new.record).await.unwrap();
    new
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::Text(body.into())).unwrap()
}

struct Answer {
    status: u16,
    headers: lambda_http::http::HeaderMap,
    body: Value,
}

fn answer(resp: Response<Body>) -> Answer {
    let bytes: &[u8] = resp.body().as_ref();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap()
        },
    }
}

async fn call(w: &World, req: Request, now: i64) -> Answer {
    answer(oauth::handle(&w.state, req, now).await)
}

async fn token_basic(w: &World, c: &NewClient, body: &str, now: i64) -> Answer {
    let auth = basic(&c.record.id, &c.secret);
    call(
        w,
        post("/oauth/token", &[("authorization", &auth)], body),
        now,
    )
    .await
}

async fn issue(w: &World, c: &NewClient, now: i64) -> String {
    let a = token_basic(w, c, "grant_type=client_credentials", now).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let token = a.body["access_token"].as_str().unwrap().to_owned();
    remember_secret(&token);
    token
}

async fn introspect(w: &World, c: &NewClient, token: &str, now: i64) -> Answer {
    let auth = basic(&c.record.id, &c.secret);
    let body = format!("token={token}");
    call(
        w,
        post("/oauth/introspect", &[("authorization", &auth)], &body),
        now,
    )
    .await
}

fn event(token: &str) -> Value {
    json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"),
           "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/orders"})
}

#[tokio::test]
async fn client_credentials_issue_an_at_jwt_in_one_read_and_one_write() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["orders:read", "orders:write"], 600).await;
    w.counter.reset();
    let a = token_basic(
        &w,
        &c,
        "grant_type=client_credentials&scope=orders:read",
        NOW,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["pragma"], "no-cache");
    assert_eq!(a.headers["content-type"], "application/json");
    let body = a.body.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 600);
    assert_eq!(a.body["scope"], "orders:read");
    // first use: the client read, the rate counters, and the last-used write
    let ops = w.counter.by_operation();
    assert_eq!(ops.get("GetItem"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("TransactWriteItems"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("UpdateItem"), Some(&1), "{ops:?}");
    assert_eq!(w.counter.total(), 3, "{ops:?}");

    let token = a.body["access_token"].as_str().unwrap();
    remember_secret(token);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = w
        .state
        .tokens
        .verify(token, TokenUse::OAuth, NOW + 1)
        .unwrap();
    assert_eq!(claims.sub, c.record.id);
    assert_eq!(claims.client_id.as_deref(), Some(c.record.id.as_str()));
    assert_eq!(claims.scope.as_deref(), Some("orders:read"));
    assert_eq!(claims.aud, w.state.config.jwt_audience);
    assert_eq!(claims.iss, w.state.config.jwt_issuer);
    assert_eq!(claims.exp, NOW + 600);
    // never usable as a user's access token, nor a user's as an OAuth one
    assert!(
        w.state
            .tokens
            .verify(token, TokenUse::Access, NOW + 1)
            .is_err()
    );
    let user = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "admin", NOW)
        .unwrap();
    assert!(
        w.state
            .tokens
            .verify(&user.token, TokenUse::OAuth, NOW + 1)
            .is_err()
    );

    let stored = w.state.clients.get(&c.record.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(NOW));

    // warm: within the last-used interval, exactly one read and one write
    w.counter.reset();
    let again = token_basic(&w, &c, "grant_type=client_credentials", NOW + 10).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["scope"], "orders:read orders:write",
        "none asked: all"
    );
    assert_eq!(w.counter.total(), 2, "{:?}", w.counter.by_operation());
}

#[tokio::test]
async fn client_secret_post_works_and_failures_are_the_rfc_errors_without_state_change() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["a"], 600).await;
    let id = c.record.id.clone();
    let body = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={}",
        c.secret
    );
    let a = call(&w, post("/oauth/token", &[], &body), NOW).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let touched = w.state.clients.get(&id).await.unwrap().unwrap();

    let wrong_basic = basic(&id, "cs_wrong");
    let wrong_post = format!("grant_type=client_credentials&client_id={id}&client_secret=cs_wrong");
    let json_body = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header("content-type", "application/json")
        .body(Body::Text(r#"{"grant_type":"client_credentials"}"#.into()))
        .unwrap();
    let good = basic(&id, &c.secret);
    let cases: Vec<(&str, Request, u16, &str, bool)> = vec![
        (
            "wrong secret, basic",
            post(
                "/oauth/token",
                &[("authorization", &wrong_basic)],
                "grant_type=client_credentials",
            ),
            401,
            "invalid_client",
            true,
        ),
        (
            "wrong secret, post",
            post("/oauth/token", &[], &wrong_post),
            401,
            "invalid_client",
            true,
        ),
        (
            "no client at all",
            post("/oauth/token", &[], "grant_type=client_credentials"),
            401,
            "invalid_client",
            false,
        ),
        (
            "unknown client",
            post(
                "/oauth/token",
                &[("authorization", &basic("cl_nobody", "cs_x"))],
                "grant_type=client_credentials",
            ),
            401,
            "invalid_client",
            true,
        ),
        (
            "scope outside the client's",
            post(
                "/oauth/token",
                &[("authorization", &good)],
                "grant_type=client_credentials&scope=a%20admin",
            ),
            400,
            "invalid_scope",
            true,
        ),
        (
            "unsupported grant",
            post(
                "/oauth/token",
                &[("authorization", &good)],
                "grant_type=password&username=u&password=p",
            ),
            400,
            "unsupported_grant_type",
            false,
        ),
        (
            "missing grant",
            post("/oauth/token", &[("authorization", &good)], "scope=a"),
            400,
            "invalid_request",
            false,
        ),
        (
            "repeated parameter",
            post(
                "/oauth/token",
                &[("authorization", &good)],
                "grant_type=client_credentials&grant_type=client_credentials",
            ),
            400,
            "invalid_request",
            false,
        ),
        (
            "two auth methods",
            post("/oauth/token", &[("authorization", &good)], &body),
            400,
            "invalid_request",
            false,
        ),
        ("JSON body", json_body, 400, "invalid_request", false),
    ];
    for (what, req, status, error, reads) in cases {
        w.counter.reset();
        let a = call(&w, req, NOW + 20).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (status, Some(error)),
            "{what}: {}",
            a.body
        );
        assert!(a.body["error_description"].is_string(), "{what}");
        assert_eq!(a.body.as_object().unwrap().len(), 2, "{what}: {}", a.body);
        assert_eq!(a.headers["cache-control"], "no-store", "{what}");
        if status == 401 {
            assert_eq!(
                a.headers["www-authenticate"], r#"Basic realm="portcullis""#,
                "{what}"
            );
        }
        // syntactic failures touch nothing; the others read the client and count the request
        let ops = w.counter.by_operation();
        assert_eq!(ops.get("UpdateItem"), None, "{what}: {ops:?}");
        assert_eq!(ops.get("PutItem"), None, "{what}: {ops:?}");
        if !reads {
            assert_eq!(w.counter.total(), 0, "{what}: {ops:?}");
        }
    }
    assert_eq!(w.state.clients.get(&id).await.unwrap().unwrap(), touched);
    let revoked = w.state.revoked.load(NOW, 100).await.unwrap();
    assert!(revoked.is_empty());
}

#[tokio::test]
async fn a_client_without_the_grant_is_an_unauthorized_client() {
    let w = World::new(&[]).await;
    let new = clients::generate(
        "no-grants",
        vec!["authorization_code".into()],
        vec![],
        600,
        NOW,
    );
    let new = NewClient::from(new);
    remember_secret(&new.secret);
    w.state.clients.create(&new.record).await.unwrap();
    let a = token_basic(&w, &new, "grant_type=client_credentials", NOW).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn the_token_endpoint_is_rate_limited_per_client_and_per_ip() {
    let w = World::new(&[
        ("OAUTH_TOKEN_RATE_LIMIT", "3/60"),
        ("OAUTH_TOKEN_IP_RATE_LIMIT", "5/60"),
    ])
    .await;
    let c = new_client(&w, &["a"], 600).await;
    let other = new_client(&w, &["a"], 600).await;
    let start = NOW - NOW.rem_euclid(60);
    for i in 0..3 {
        assert_eq!(
            token_basic(&w, &c, "grant_type=client_credentials", start + i)
                .await
                .status,
            200
        );
    }
    let limited = token_basic(&w, &c, "grant_type=client_credentials", start + 10).await;
    assert_eq!(
        (limited.status, limited.body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(limited.headers["retry-after"], "50");
    // a wrong secret is not held against the client (a stranger who knows the id cannot
    // keep it at 429) but counts against the IP: 3 + 1 of 5
    let wrong = NewClient {
        secret: "cs_wrong".into(),
        record: c.record.clone(),
    };
    assert_eq!(
        token_basic(&w, &wrong, "grant_type=client_credentials", start + 11)
            .await
            .status,
        401
    );
    let stored = w.state.clients.get(&c.record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(start),
        "a refused request changes no client"
    );
    // another client from the same IP gets the last place under the IP limit
    assert_eq!(
        token_basic(&w, &other, "grant_type=client_credentials", start + 12)
            .await
            .status,
        200
    );
    let ip_full = token_basic(&w, &other, "grant_type=client_credentials", start + 20).await;
    assert_eq!(
        (ip_full.status, ip_full.body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(ip_full.headers["retry-after"], "40");
    // the next window starts afresh
    assert_eq!(
        token_basic(&w, &c, "grant_type=client_credentials", start + 60)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn introspection_is_active_only_for_live_tokens_of_the_calling_client() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["orders:read"], 600).await;
    let other = new_client(&w, &["orders:read"], 600).await;
    let token = issue(&w, &c, NOW).await;
    w.counter.reset();
    let a = introspect(&w, &c, &token, NOW + 1).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        w.counter.total(),
        2,
        "client + revocation entry: {:?}",
        w.counter.by_operation()
    );
    let claims = w.state.tokens.verify(&token, TokenUse::OAuth, NOW).unwrap();
    assert_eq!(
        a.body,
        json!({"active": true, "scope": "orders:read", "client_id": c.record.id,
               "token_type": "Bearer", "exp": NOW + 600, "iat": NOW, "sub": c.record.id,
               "aud": w.state.config.jwt_audience, "iss": w.state.config.jwt_issuer,
               "jti": claims.jti})
    );
    let inactive = json!({"active": false});
    let expired_at = NOW + 600 + w.state.config.jwt_leeway;
    assert_eq!(
        introspect(&w, &c, &token, expired_at).await.body,
        inactive,
        "expired"
    );
    assert_eq!(
        introspect(&w, &other, &token, NOW + 1).await.body,
        inactive,
        "foreign"
    );
    assert_eq!(
        introspect(&w, &c, "garbage", NOW + 1).await.body,
        inactive,
        "garbage"
    );
    let user = w
        .state
        .tokens
        .issue_access("usr_1", "a@example.com", "user", NOW)
        .unwrap();
    assert_eq!(
        introspect(&w, &c, &user.token, NOW + 1).await.body,
        inactive,
        "user token"
    );
    // a bad client gets no answer about the token at all
    let wrong = NewClient {
        secret: "cs_wrong".into(),
        record: c.record.clone(),
    };
    let refused = introspect(&w, &wrong, &token, NOW + 1).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let missing = call(
        &w,
        post(
            "/oauth/introspect",
            &[("authorization", &basic(&c.record.id, &c.secret))],
            "",
        ),
        NOW,
    )
    .await;
    assert_eq!(
        (missing.status, missing.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn revocation_stops_the_token_at_introspection_and_at_the_authorizer() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["orders:read"], 600).await;
    let other = new_client(&w, &["orders:read"], 600).await;
    let token = issue(&w, &c, NOW).await;
    let authorizer = Authorizer::new(w.state.clone());
    let allowed = authorizer.handle(&event(&token), NOW + 1).await.unwrap();
    assert_eq!(allowed["principalId"], format!("client:{}", c.record.id));
    assert_eq!(
        allowed["context"],
        json!({"principalId": format!("client:{}", c.record.id), "clientId": c.record.id,
               "scopes": "orders:read", "authType": "oauth"})
    );

    let auth = basic(&c.record.id, &c.secret);
    let other_auth = basic(&other.record.id, &other.secret);
    let revoke =
        |auth: String, body: String| post("/oauth/revoke", &[("authorization", &auth)], &body);
    // another client cannot revoke it (answered 200, as for any token not its own)
    let a = call(&w, revoke(other_auth, format!("token={token}")), NOW + 2).await;
    assert_eq!((a.status, &a.body), (200, &Value::Null));
    assert_eq!(
        introspect(&w, &c, &token, NOW + 2).await.body["active"],
        true
    );
    // a hint the RFC does not define
    let a = call(
        &w,
        revoke(
            auth.clone(),
            format!("token={token}&token_type_hint=id_token"),
        ),
        NOW + 2,
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("unsupported_token_type"))
    );
    assert_eq!(
        introspect(&w, &c, &token, NOW + 2).await.body["active"],
        true
    );

    let a = call(
        &w,
        revoke(
            auth.clone(),
            format!("token={token}&token_type_hint=access_token"),
        ),
        NOW + 3,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        introspect(&w, &c, &token, NOW + 3).await.body,
        json!({"active": false})
    );
    // unknown, garbage and repeated revocations are all 200
    for t in ["garbage".to_owned(), token.clone()] {
        assert_eq!(
            call(&w, revoke(auth.clone(), format!("token={t}")), NOW + 4)
                .await
                .status,
            200
        );
    }
    // the authorizer refuses it once its revocation list is reloaded (the documented window)
    let window = w.state.config.revocation_refresh;
    assert!(
        authorizer
            .handle(&event(&token), NOW + 1 + window)
            .await
            .is_err()
    );
    assert!(
        Authorizer::new(w.state.clone())
            .handle(&event(&token), NOW + 4)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn route_rules_apply_to_client_scopes() {
    let w = World::new(&[(
        "AUTHORIZER_ROUTE_RULES",
        "GET /orders=scope:orders:read; POST /orders=scope:orders:write",
    )])
    .await;
    let c = new_client(&w, &["orders:read"], 600).await;
    let token = issue(&w, &c, NOW).await;
    let policy = Authorizer::new(w.state.clone())
        .handle(&event(&token), NOW + 1)
        .await
        .unwrap();
    let statements = policy["policyDocument"]["Statement"].as_array().unwrap();
    let denied: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .map(|s| s["Resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        denied,
        ["arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/POST/orders"]
    );
}

#[tokio::test]
async fn a_disabled_client_gets_nothing_and_its_tokens_stop_within_the_window() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["a"], 600).await;
    let token = issue(&w, &c, NOW).await;
    let authorizer = Authorizer::new(w.state.clone());
    assert!(authorizer.handle(&event(&token), NOW + 1).await.is_ok());
    assert!(
        oauth::disable_client(&w.state.clients, &w.state.revoked, &c.record.id, 5, NOW + 1)
            .await
            .unwrap()
    );
    assert!(
        !oauth::disable_client(&w.state.clients, &w.state.revoked, "cl_nobody", 5, NOW + 1)
            .await
            .unwrap()
    );
    let a = token_basic(&w, &c, "grant_type=client_credentials", NOW + 2).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let window = w.state.config.revocation_refresh;
    assert!(
        authorizer
            .handle(&event(&token), NOW + 1 + window)
            .await
            .is_err()
    );
    // the revocation outlives every token the client could hold
    let set = w.state.revoked.load(NOW + 600, 100).await.unwrap();
    assert!(set.is_revoked("any", &c.record.id, NOW + 1));
}

#[tokio::test]
async fn rotated_secrets_overlap_for_exactly_the_overlap() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["a"], 600).await;
    let new_secret = w
        .state
        .clients
        .rotate_secret(&c.record.id, 60, NOW)
        .await
        .unwrap()
        .unwrap();
    remember_secret(&new_secret);
    let fresh = NewClient {
        secret: new_secret,
        record: c.record.clone(),
    };
    assert_eq!(
        token_basic(&w, &c, "grant_type=client_credentials", NOW + 59)
            .await
            .status,
        200
    );
    assert_eq!(
        token_basic(&w, &fresh, "grant_type=client_credentials", NOW + 59)
            .await
            .status,
        200
    );
    assert_eq!(
        token_basic(&w, &c, "grant_type=client_credentials", NOW + 60)
            .await
            .status,
        401
    );
    assert_eq!(
        token_basic(&w, &fresh, "grant_type=client_credentials", NOW + 60)
            .await
            .status,
        200
    );
    // overlap 0 (the default): the old secret stops at once
    let third = w
        .state
        .clients
        .rotate_secret(&c.record.id, 0, NOW + 100)
        .await
        .unwrap()
        .unwrap();
    remember_secret(&third);
    assert_eq!(
        token_basic(&w, &fresh, "grant_type=client_credentials", NOW + 100)
            .await
            .status,
        401
    );
    assert!(
        w.state
            .clients
            .rotate_secret("cl_nobody", 0, NOW)
            .await
            .unwrap()
            .is_none()
    );
    let listed = w.state.clients.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, c.record.id);
}

#[tokio::test]
async fn a_store_outage_is_a_503_and_never_a_token() {
    let w = World::new(&[]).await;
    let c = new_client(&w, &["a"], 600).await;
    let stopped = w.stopped().await;
    let auth = basic(&c.record.id, &c.secret);
    let a = answer(
        oauth::handle(
            &stopped,
            post(
                "/oauth/token",
                &[("authorization", &auth)],
                "grant_type=client_credentials",
            ),
            NOW,
        )
        .await,
    );
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(a.headers.contains_key("retry-after"));
}
