//! Faults: the stores unreachable at cold start (a `cargo lambda watch` whose AWS endpoint is a
//! closed port) and stopped mid-run (a warm state whose endpoint stops answering). Every
//! function answers 503 `SERVICE_UNAVAILABLE` JSON; the authorizer denies with an uncached
//! error; nothing is half-written.

use portcullis::Error;
use portcullis::authorizer::{Authorizer, Failure};
use portcullis::login::{Credentials, login};
use portcullis::session::{LogoutScope, logout, refresh};
use portcullis::store::RefreshStatus;
use portcullis_tests::{World, https_client, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

/// method, path, JSON body (null: none), one extra header
type Case<'a> = (reqwest::Method, &'a str, Value, Option<(&'a str, &'a str)>);
const PASSWORD: &str = "Corr3ct-horse!";

fn fault_url(path: &str) -> String {
    format!(
        "{}{path}",
        std::env::var("PORTCULLIS_TEST_FAULT_URL").unwrap()
    )
}

#[tokio::test]
async fn every_http_function_answers_503_when_the_stores_are_unreachable_at_cold_start() {
    let client = https_client();
    let cases: Vec<Case> = vec![
        (
            reqwest::Method::POST,
            "/lambda-url/login/",
            json!({"email": "a@example.com", "password": PASSWORD}),
            None,
        ),
        (
            reqwest::Method::POST,
            "/lambda-url/refresh/",
            json!({"refreshToken": "a.b.c"}),
            None,
        ),
        (
            reqwest::Method::POST,
            "/lambda-url/logout/",
            json!({"allSessions": true}),
            Some(("authorization", "Bearer a.b.c")),
        ),
        (
            reqwest::Method::POST,
            "/lambda-url/validate-key/",
            json!({}),
            Some(("x-api-key", "ak_x")),
        ),
        (
            reqwest::Method::GET,
            "/lambda-url/jwks/.well-known/jwks.json",
            Value::Null,
            None,
        ),
    ];
    for (method, path, body, header) in cases {
        let mut req = client.request(method, fault_url(path));
        if !body.is_null() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{path}");
        assert_eq!(resp.headers()["retry-after"], "1", "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{path}");
        assert_eq!(
            body["error"]["message"], "the service is temporarily unavailable",
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_oauth_function_answers_an_rfc_503_when_the_stores_are_unreachable_at_cold_start() {
    let resp = https_client()
        .post(fault_url("/lambda-url/oauth/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth("cl_0123456789abcdefghijkl", Some("cs_x"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "temporarily_unavailable",
               "error_description": "the service is temporarily unavailable"})
    );
}

#[tokio::test]
async fn the_authorizer_denies_with_an_uncached_error_when_the_stores_are_unreachable() {
    let event = include_str!("../../events/authorizer-token.json");
    let resp = https_client()
        .post(fault_url("/2015-03-31/functions/authorizer/invocations"))
        .body(event)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errorType": "ServiceUnavailable", "errorMessage": "authorizer dependencies unavailable"})
    );
}

#[tokio::test]
async fn a_store_stopped_mid_run_gives_503_everywhere_and_writes_nothing() {
    let w = World::new(&[]).await;
    let email = unique_email("fault");
    w.user(&email, PASSWORD, "user").await;
    let creds = Credentials {
        email: email.clone(),
        password: PASSWORD.into(),
    };
    let session = login(&w.state, &creds, "ip", NOW).await.unwrap();
    let down = w.stopped().await;
    let unavailable = |r: Result<(), Error>| matches!(r, Err(Error::Unavailable(_)));
    assert!(unavailable(
        login(&down, &creds, "ip", NOW).await.map(|_| ())
    ));
    assert!(unavailable(
        refresh(&down, &session.tokens.refresh_token, "ip", NOW + 1)
            .await
            .map(|_| ())
    ));
    assert!(unavailable(
        logout(
            &down,
            Some(&session.tokens.access_token),
            LogoutScope::Session(&session.tokens.refresh_token),
            "ip",
            NOW + 1
        )
        .await
    ));
    assert!(unavailable(
        logout(
            &down,
            Some(&session.tokens.access_token),
            LogoutScope::All,
            "ip",
            NOW + 1
        )
        .await
    ));
    assert!(unavailable(
        portcullis::apikeys::validate(
            &down,
            Some(&portcullis::store::api_keys::generate("x", vec![], NOW, None).key),
            NOW
        )
        .await
        .map(|_| ())
    ));
    let authorizer = Authorizer::new(down);
    let event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {}", session.tokens.access_token),
                       "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/whoami"});
    assert_eq!(
        authorizer.handle(&event, NOW).await,
        Err(Failure::UNAVAILABLE)
    );
    // nothing half-written: the session is exactly as it was and still works
    assert_eq!(
        w.refresh_status(&session.tokens.refresh_token).await,
        RefreshStatus::Active
    );
    assert!(
        w.state
            .revoked
            .load(NOW + 1, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.failed_attempts(&email).await, 0);
    refresh(&w.state, &session.tokens.refresh_token, "ip", NOW + 2)
        .await
        .unwrap();
}
