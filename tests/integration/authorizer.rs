//! The authorizer against the emulator: every event kind x every credential case, the exact
//! response shapes API Gateway expects, caching-safe policies, and DynamoDB requests per call.

use portcullis::authorizer::{Authorizer, Failure};
use portcullis::login::{Credentials, login};
use portcullis::session::{LogoutScope, logout};
use portcullis::store::api_keys::generate;
use portcullis_tests::{World, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "Corr3ct-horse!";
const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Token,
    Request,
    Http,
}

#[derive(Debug, Clone)]
enum Cred {
    Bearer(String),
    Key(String),
    Raw(String),
    None,
}

fn event(kind: Kind, cred: &Cred, method: &str, path: &str) -> Value {
    let mut ev: Value = serde_json::from_str(match kind {
        Kind::Token => include_str!("../../events/authorizer-token.json"),
        Kind::Request => include_str!("../../events/authorizer-request.json"),
        Kind::Http => include_str!("../../events/authorizer-http.json"),
    })
    .unwrap();
    let arn = format!("{STAGE}/{method}{path}");
    match kind {
        Kind::Token => {
            ev["methodArn"] = json!(arn);
            match cred {
                Cred::Bearer(t) => ev["authorizationToken"] = json!(format!("Bearer {t}")),
                Cred::Key(k) => ev["authorizationToken"] = json!(k),
                Cred::Raw(r) => ev["authorizationToken"] = json!(r),
                Cred::None => {
                    ev.as_object_mut().unwrap().remove("authorizationToken");
                }
            }
        }
        Kind::Request | Kind::Http => {
            ev[if kind == Kind::Http {
                "routeArn"
            } else {
                "methodArn"
            }] = json!(arn);
            let headers = ev["headers"].as_object_mut().unwrap();
            headers.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
            match cred {
                Cred::Bearer(t) => {
                    headers.insert("Authorization".into(), json!(format!("Bearer {t}")));
                }
                Cred::Key(k) => {
                    headers.insert("X-Api-Key".into(), json!(k));
                }
                Cred::Raw(r) => {
                    headers.insert("authorization".into(), json!(r));
                }
                Cred::None => {}
            }
        }
    }
    ev
}

struct Fixture {
    w: World,
    valid_jwt: String,
    expired_jwt: String,
    wrong_aud_jwt: String,
    refresh_jwt: String,
    revoked_jwt: String,
    user_id: String,
    valid_key: String,
    key_id: String,
    revoked_key: String,
    expired_key: String,
    reader_key: String,
}

async fn fixture(overrides: &[(&str, &str)]) -> Fixture {
    let w = World::new(overrides).await;
    let email = unique_email("authz");
    let user = w.user(&email, PASSWORD, "admin").await;
    let creds = Credentials {
        email: email.clone(),
        password: PASSWORD.into(),
    };
    let a = login(&w.state, &creds, "ip", NOW).await.unwrap();
    let b = login(&w.state, &creds, "ip", NOW).await.unwrap();
    logout(
        &w.state,
        Some(&b.tokens.access_token),
        LogoutScope::Session(&b.tokens.refresh_token),
        "ip",
        NOW,
    )
    .await
    .unwrap();
    let old = w
        .state
        .tokens
        .issue_access(&user.id, &email, "admin", NOW - 10_000)
        .unwrap()
        .token;
    let mut other = w.state.tokens.clone();
    other.audience = "someone-else".into();
    let wrong_aud = other
        .issue_access(&user.id, &email, "admin", NOW)
        .unwrap()
        .token;
    let mut keys = Vec::new();
    for (scopes, expires) in [
        (vec!["orders:write"], None),
        (vec!["orders:write"], None),
        (vec![], Some(NOW - 1)),
        (vec!["orders:read"], None),
    ] {
        let new = generate(
            "svc",
            scopes.into_iter().map(String::from).collect(),
            NOW - 100,
            expires,
        );
        w.state.api_keys.put(&new.record).await.unwrap();
        keys.push((new.record.id, new.key));
    }
    w.state.api_keys.revoke(&keys[1].0, NOW).await.unwrap();
    w.counter.reset();
    Fixture {
        valid_jwt: a.tokens.access_token,
        refresh_jwt: a.tokens.refresh_token,
        revoked_jwt: b.tokens.access_token,
        expired_jwt: old,
        wrong_aud_jwt: wrong_aud,
        user_id: user.id,
        valid_key: keys[0].1.clone(),
        key_id: keys[0].0.clone(),
        revoked_key: keys[1].1.clone(),
        expired_key: keys[2].1.clone(),
        reader_key: keys[3].1.clone(),
        w,
    }
}

fn allow_policy(principal: &str, context: Value, denies: &[&str]) -> Value {
    let mut statements = vec![
        json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": format!("{STAGE}/*")}),
    ];
    for d in denies {
        statements.push(json!({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": format!("{STAGE}/{d}")}));
    }
    json!({"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": statements}, "context": context})
}

#[tokio::test]
async fn every_event_kind_times_every_credential_case() {
    for response in ["iam", "simple"] {
        let f = fixture(&[
            ("AUTHORIZER_RESPONSE", response),
            ("AUTHORIZER_ROUTE_RULES", "* /orders*=scope:orders:write"),
        ])
        .await;
        let authz = Authorizer::new(f.w.state.clone());
        let user_ctx = json!({"principalId": f.user_id, "userId": f.user_id, "email": f.w.state.tokens.verify(&f.valid_jwt, portcullis::token::TokenUse::Access, NOW).unwrap().email.unwrap(), "role": "admin", "scopes": "", "authType": "jwt", "mfa": "false"});
        let key_ctx = json!({"principalId": f.key_id, "keyId": f.key_id, "keyName": "svc", "scopes": "orders:write", "authType": "apiKey"});
        let denied = [
            Cred::Bearer(f.expired_jwt.clone()),
            Cred::Bearer(f.wrong_aud_jwt.clone()),
            Cred::Bearer(f.refresh_jwt.clone()),
            Cred::Bearer(f.revoked_jwt.clone()),
            Cred::Key(f.revoked_key.clone()),
            Cred::Key(f.expired_key.clone()),
            Cred::None,
            Cred::Raw("Bearer".into()),
            Cred::Raw("Basic dXNlcjpwYXNz".into()),
            Cred::Bearer("garbage.garbage.garbage".into()),
            Cred::Key("ak_garbage".into()),
        ];
        for kind in [Kind::Token, Kind::Request, Kind::Http] {
            let simple = kind == Kind::Http && response == "simple";
            // valid JWT and valid key: allowed, principal in context
            for (cred, principal, ctx) in [
                (
                    Cred::Bearer(f.valid_jwt.clone()),
                    f.user_id.clone(),
                    user_ctx.clone(),
                ),
                (
                    Cred::Key(f.valid_key.clone()),
                    f.key_id.clone(),
                    key_ctx.clone(),
                ),
            ] {
                let out = authz
                    .handle(&event(kind, &cred, "GET", "/whoami"), NOW)
                    .await
                    .unwrap();
                let expected = if simple {
                    json!({"isAuthorized": true, "context": ctx})
                } else {
                    let denies: &[&str] = if matches!(cred, Cred::Key(_)) {
                        &[]
                    } else {
                        &["*/orders*"]
                    };
                    allow_policy(&principal, ctx, denies)
                };
                assert_eq!(out, expected, "{kind:?} {response} {cred:?}");
            }
            // every refused credential
            for cred in &denied {
                let out = authz
                    .handle(&event(kind, cred, "GET", "/whoami"), NOW)
                    .await;
                if simple {
                    assert_eq!(out, Ok(json!({"isAuthorized": false})), "{kind:?} {cred:?}");
                } else {
                    assert_eq!(
                        out,
                        Err(Failure::UNAUTHORIZED),
                        "{kind:?} {response} {cred:?}"
                    );
                }
            }
            // wrong scope: a valid credential on a route whose rule it fails -> Deny (403)
            let out = authz
                .handle(
                    &event(kind, &Cred::Key(f.reader_key.clone()), "POST", "/orders"),
                    NOW,
                )
                .await
                .unwrap();
            if simple {
                assert_eq!(out, json!({"isAuthorized": false}));
            } else {
                assert_eq!(
                    out["policyDocument"]["Statement"][1],
                    json!({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": format!("{STAGE}/*/orders*")})
                );
                assert_eq!(out["principalId"], json!(out["context"]["keyId"]));
            }
        }
        // garbage events
        for garbage in [
            json!(null),
            json!("x"),
            json!({}),
            json!({"type": "WHAT"}),
            json!([1, 2]),
        ] {
            assert_eq!(
                authz.handle(&garbage, NOW).await,
                Err(Failure::UNAUTHORIZED)
            );
        }
    }
}

#[tokio::test]
async fn a_policy_answered_for_one_route_allows_the_others_when_cached() {
    let f = fixture(&[("AUTHORIZER_RESPONSE", "iam")]).await;
    let authz = Authorizer::new(f.w.state.clone());
    let out = authz
        .handle(
            &event(
                Kind::Token,
                &Cred::Bearer(f.valid_jwt.clone()),
                "GET",
                "/whoami",
            ),
            NOW,
        )
        .await
        .unwrap();
    let statements = out["policyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let resource = statements[0]["Resource"].as_str().unwrap();
    assert_eq!(resource, format!("{STAGE}/*"));
    // IAM wildcard semantics: the cached Allow covers every method and path of the stage
    for other in ["POST/orders", "GET/whoami", "DELETE/things/42"] {
        let arn = format!("{STAGE}/{other}");
        assert!(arn.starts_with(resource.trim_end_matches('*')), "{arn}");
    }
    // ...and never another stage or API
    assert!(
        !"arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/GET/whoami"
            .starts_with(resource.trim_end_matches('*'))
    );
}

#[tokio::test]
async fn dynamodb_requests_per_call_cold_and_warm() {
    let f = fixture(&[
        ("AUTHORIZER_RESPONSE", "iam"),
        ("REVOCATION_REFRESH_SECONDS", "5"),
        ("API_KEY_CACHE_SECONDS", "30"),
    ])
    .await;
    let authz = Authorizer::new(f.w.state.clone());
    let jwt = event(
        Kind::Token,
        &Cred::Bearer(f.valid_jwt.clone()),
        "GET",
        "/whoami",
    );
    let key = event(
        Kind::Request,
        &Cred::Key(f.valid_key.clone()),
        "GET",
        "/whoami",
    );
    // JWT: cold = one Query for the revocation list; warm = none until the refresh interval
    authz.handle(&jwt, NOW).await.unwrap();
    assert_eq!(
        f.w.counter.by_operation(),
        [("Query".to_string(), 1)].into()
    );
    f.w.counter.reset();
    for t in 0..100 {
        authz.handle(&jwt, NOW + t % 5).await.unwrap();
    }
    assert_eq!(f.w.counter.total(), 0, "warm JWT decisions make no request");
    authz.handle(&jwt, NOW + 5).await.unwrap();
    assert_eq!(f.w.counter.total(), 1, "one reload per interval");
    // API key: cold = one GetItem (+ the first last-used write); warm = none while cached
    f.w.counter.reset();
    authz.handle(&key, NOW).await.unwrap();
    assert_eq!(f.w.counter.by_operation().get("GetItem"), Some(&1));
    f.w.counter.reset();
    for t in 0..100 {
        authz.handle(&key, NOW + t % 30).await.unwrap();
    }
    assert_eq!(f.w.counter.total(), 0, "cached API key");
    // a cached key is never trusted past its own expiry
    let expiring = generate("svc", vec![], NOW - 100, Some(NOW + 10));
    f.w.state.api_keys.put(&expiring.record).await.unwrap();
    let expiring_event = event(Kind::Request, &Cred::Key(expiring.key), "GET", "/whoami");
    for t in [NOW, NOW + 9] {
        let policy = authz.handle(&expiring_event, t).await.unwrap();
        assert_eq!(policy["policyDocument"]["Statement"][0]["Effect"], "Allow");
    }
    assert_eq!(
        authz.handle(&expiring_event, NOW + 10).await,
        Err(Failure::UNAUTHORIZED)
    );
    // a revoked JWT is refused within the refresh interval
    let creds = Credentials {
        email: f
            .w
            .state
            .tokens
            .verify(&f.valid_jwt, portcullis::token::TokenUse::Access, NOW)
            .unwrap()
            .email
            .unwrap(),
        password: PASSWORD.into(),
    };
    let c = login(&f.w.state, &creds, "ip", NOW).await.unwrap();
    let c_event = event(
        Kind::Token,
        &Cred::Bearer(c.tokens.access_token.clone()),
        "GET",
        "/whoami",
    );
    authz.handle(&c_event, NOW + 5).await.unwrap();
    logout(
        &f.w.state,
        Some(&c.tokens.access_token),
        LogoutScope::All,
        "ip",
        NOW + 6,
    )
    .await
    .unwrap();
    assert_eq!(
        authz.handle(&c_event, NOW + 10).await,
        Err(Failure::UNAUTHORIZED),
        "refused at the next reload"
    );
}

#[tokio::test]
async fn store_failure_fails_closed_without_a_cacheable_answer() {
    let f = fixture(&[("AUTHORIZER_RESPONSE", "simple")]).await;
    let state = f.w.stopped().await;
    let authz = Authorizer::new(state);
    for kind in [Kind::Token, Kind::Request, Kind::Http] {
        for cred in [
            Cred::Bearer(f.valid_jwt.clone()),
            Cred::Key(f.valid_key.clone()),
        ] {
            assert_eq!(
                authz
                    .handle(&event(kind, &cred, "GET", "/whoami"), NOW)
                    .await,
                Err(Failure::UNAVAILABLE),
                "{kind:?} {cred:?}"
            );
        }
    }
}
