//! login over real HTTPS requests to `cargo lambda watch` (concurrency 8).

use portcullis::store::UserStore;
use portcullis_tests::{
    RequestCounter, cli, clients, function_url, https_client, remember_secret, tls_function_url,
    unique_email, watch_env,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";

fn create_user(email: &str, role: &str) -> String {
    portcullis_tests::cli_create_user(email, PASSWORD, role)
}

async fn users() -> UserStore {
    let aws = clients(&RequestCounter::default()).await;
    UserStore::new(aws.dynamodb, watch_env()["USERS_TABLE"].clone())
}

async fn post(body: &str, content_type: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = https_client()
        .post(function_url("login"))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    for token in ["accessToken", "refreshToken"] {
        remember_secret(body["data"]["tokens"][token].as_str().unwrap_or_default());
    }
    (status, headers, body)
}

fn login_body(email: &str, password: &str) -> String {
    remember_secret(password);
    json!({"email": email, "password": password}).to_string()
}

#[tokio::test]
async fn login_succeeds_with_the_contract_shape() {
    let email = unique_email("h-ok");
    let id = create_user(&email, "admin");
    let (status, headers, body) =
        post(&login_body(&email, PASSWORD), Some("application/json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        body["data"]["user"],
        json!({"id": id, "email": email, "role": "admin"})
    );
    let tokens = &body["data"]["tokens"];
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    assert_eq!(
        tokens["accessToken"].as_str().unwrap().split('.').count(),
        3
    );
    assert_eq!(
        tokens["refreshToken"].as_str().unwrap().split('.').count(),
        3
    );
    assert_eq!(tokens.as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let email = unique_email("h-wp");
    create_user(&email, "user");
    let (s1, _, b1) = post(
        &login_body(&email, "Wr0ng-horse!"),
        Some("application/json"),
    )
    .await;
    let (s2, _, b2) = post(
        &login_body(&unique_email("h-ghost"), "Wr0ng-horse!"),
        Some("application/json"),
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(
        b1,
        json!({"error": {"code": "INVALID_CREDENTIALS", "message": "invalid email or password"}})
    );
    assert_eq!(b1, b2);
    assert_eq!(
        users()
            .await
            .get(&email)
            .await
            .unwrap()
            .unwrap()
            .failed_attempts,
        1
    );
}

#[tokio::test]
async fn lockout_answers_423_with_retry_after_even_for_the_right_password() {
    let email = unique_email("h-lock");
    create_user(&email, "user");
    for _ in 0..5 {
        let (status, _, _) = post(
            &login_body(&email, "Wr0ng-horse!"),
            Some("application/json"),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, headers, body) =
        post(&login_body(&email, PASSWORD), Some("application/json")).await;
    assert_eq!(status, 423, "{body}");
    assert_eq!(body["error"]["code"], "ACCOUNT_LOCKED");
    let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1800).contains(&retry), "{retry}");
    // the CLI clears it
    let out = cli(&["user", "unlock", "--email", &email], None);
    assert!(out.status.success());
    let (status, _, _) = post(&login_body(&email, PASSWORD), Some("application/json")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn twenty_concurrent_wrong_passwords_over_http() {
    let email = unique_email("h-race");
    create_user(&email, "user");
    let body = login_body(&email, "Wr0ng-horse!");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            post(&body, Some("application/json")).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let invalid = statuses.iter().filter(|s| **s == 401).count() as u32;
    let locked = statuses.iter().filter(|s| **s == 423).count();
    assert_eq!(invalid as usize + locked, 20, "{statuses:?}");
    let user = users().await.get(&email).await.unwrap().unwrap();
    assert_eq!(user.failed_attempts, invalid, "{statuses:?}");
    assert!(user.locked_until.is_some());
    let (status, _, _) = post(&login_body(&email, PASSWORD), Some("application/json")).await;
    assert_eq!(status, 423);
}

#[tokio::test]
async fn every_bad_input_gets_its_4xx_and_changes_nothing() {
    let email = unique_email("h-bad");
    create_user(&email, "user");
    let big = json!({"email": email, "password": "x".repeat(20_000)}).to_string();
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        (
            "{not json".into(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "[]".into(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        ("".into(), Some("application/json"), 400, "VALIDATION_ERROR"),
        (
            json!({"email": email}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"password": PASSWORD}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": 5, "password": PASSWORD}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": email, "password": ["x"]}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": email, "password": ""}).to_string(),
            Some("application/json"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            login_body(&email, "Wr0ng-horse!"),
            Some("text/plain"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            login_body(&email, "Wr0ng-horse!"),
            None,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (big, Some("application/json"), 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (body, ct, status, code) in cases {
        let (got, _, json) = post(&body, ct).await;
        assert_eq!(
            (got, json["error"]["code"].as_str().unwrap_or("-")),
            (status, code),
            "body {:.60}",
            body
        );
        assert!(json["error"]["message"].is_string());
    }
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = https_client()
            .request(method.clone(), function_url("login"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "POST");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["error"]["code"], "METHOD_NOT_ALLOWED");
    }
    let user = users().await.get(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.failed_attempts, user.locked_until),
        (0, None),
        "bad input changed no state"
    );
}

#[tokio::test]
async fn login_over_https_with_the_local_certificate() {
    let email = unique_email("h-tls");
    create_user(&email, "user");
    let resp = https_client()
        .post(tls_function_url("login"))
        .header("content-type", "application/json")
        .body(login_body(&email, PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["user"]["email"], email);
}
