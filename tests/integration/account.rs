//! The account lifecycle in-process against the emulator (DynamoDB + SES), with the clock
//! passed in: link expiry, single use, DynamoDB and SES requests per operation, what a mail
//! failure leaves behind (nothing), the per-address rate limit, and sign-up switched off.

use lambda_http::{Body, Request, Response};
use portcullis::account::{RESET_TTL, VERIFY_TTL};
use portcullis_tests::{World, aws_endpoint, remember_secret, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "Corr3ct-horse!";
const NEW_PASSWORD: &str = "Another-g00d-passphrase";
const SENDER: &str = "no-reply@portcullis.test";

async fn world(extra: &[(&str, &str)]) -> World {
    let mut overrides = vec![
        ("SELF_SIGNUP", "on"),
        ("MAIL_FROM", SENDER),
        ("ACCOUNT_RESPONSE_FLOOR_MS", "0"),
        ("ACCOUNT_RATE_LIMIT", "1000/900"),
    ];
    overrides.extend_from_slice(extra);
    World::new(&overrides).await
}

fn post(path: &str, body: &Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://auth.test{path}"))
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap()
}

fn json_of(resp: &Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null)
}

/// The mails the emulator holds for `to`, oldest first: (subject, body).
async fn mails(to: &str) -> Vec<(String, String)> {
    let all: Value = reqwest::get(format!("{}/_test/ses/messages", aws_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destinations"]["ToAddresses"][0] == json!(to))
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The token in the last mail's link (after `#token=`).
async fn last_token(to: &str) -> String {
    let (_, body) = mails(to).await.pop().expect("a mail");
    let at = body.find("#token=").expect("a link") + "#token=".len();
    let token: String = body[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    remember_secret(&token);
    token
}

#[tokio::test]
async fn sign_up_verify_and_the_requests_each_step_makes() {
    let w = world(&[]).await;
    let email = unique_email("acct-signup");
    remember_secret(PASSWORD);
    let body = json!({"email": email, "password": PASSWORD});
    let resp = portcullis::account::handle(&w.state, post("/auth/register", &body), NOW).await;
    assert_eq!(resp.status(), 202);
    let accepted = resp.body().as_ref().to_vec();
    // Rate limits (one transaction) and the conditional PutItem; one SES send.
    let ops = w.counter.by_operation();
    assert_eq!(w.counter.total(), 2, "{ops:?}");
    assert_eq!(mails(&email).await.len(), 1);
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert!(!user.email_verified);
    // Registering again: the same bytes, the same requests, a different mail.
    w.counter.reset();
    let again = portcullis::account::handle(&w.state, post("/auth/register", &body), NOW + 1).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.body().as_ref(), accepted.as_slice());
    assert_eq!(w.counter.total(), 2, "{:?}", w.counter.by_operation());
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1].0.contains("Someone tried to register"),
        "{:?}",
        sent[1].0
    );
    assert!(!sent[1].1.contains("#token="));

    let token = {
        let (_, first) = &sent[0];
        let at = first.find("#token=").unwrap() + 7;
        first[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect::<String>()
    };
    remember_secret(&token);
    // Unverified: the right password is refused with EMAIL_NOT_VERIFIED, a wrong one as ever.
    let creds = |p: &str| portcullis::login::Credentials {
        email: email.clone(),
        password: p.into(),
    };
    let refused = portcullis::login::login(&w.state, &creds(PASSWORD), "ip", NOW + 2).await;
    assert_eq!(refused.unwrap_err().code(), "EMAIL_NOT_VERIFIED");
    // An expired link (24 h) is refused and changes nothing.
    let late = portcullis::account::handle(
        &w.state,
        post("/auth/verify-email", &json!({"token": token})),
        NOW + VERIFY_TTL,
    )
    .await;
    assert_eq!(json_of(&late)["error"]["code"], "INVALID_LINK");
    w.counter.reset();
    let ok = portcullis::account::handle(
        &w.state,
        post("/auth/verify-email", &json!({"token": token})),
        NOW + VERIFY_TTL - 1,
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(json_of(&ok), json!({"data": {"verified": true}}));
    assert_eq!(w.counter.total(), 2, "GetItem + the consuming UpdateItem");
    let twice = portcullis::account::handle(
        &w.state,
        post("/auth/verify-email", &json!({"token": token})),
        NOW + 10,
    )
    .await;
    assert_eq!(json_of(&twice)["error"]["code"], "INVALID_LINK");
    let out = portcullis::login::login(&w.state, &creds(PASSWORD), "ip", NOW + 11)
        .await
        .unwrap();
    remember_secret(&out.tokens.access_token);
    remember_secret(&out.tokens.refresh_token);
}

#[tokio::test]
async fn reset_links_expire_work_once_and_the_newest_wins() {
    let w = world(&[]).await;
    let email = unique_email("acct-reset");
    w.user(&email, PASSWORD, "user").await;
    remember_secret(NEW_PASSWORD);
    let request = |now: i64| {
        portcullis::account::handle(
            &w.state,
            post("/auth/password-reset", &json!({"email": email})),
            now,
        )
    };
    let confirm = |token: String, now: i64| {
        portcullis::account::handle(
            &w.state,
            post(
                "/auth/password-reset/confirm",
                &json!({"token": token, "password": NEW_PASSWORD}),
            ),
            now,
        )
    };
    // Known address: rate limits + GetItem + the token's UpdateItem, and one mail.
    let resp = request(NOW).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(w.counter.total(), 3, "{:?}", w.counter.by_operation());
    let first = last_token(&email).await;
    // Unknown address: the same body, no mail, one request fewer (the floor covers it).
    w.counter.reset();
    let stranger = unique_email("acct-nobody");
    let unknown = portcullis::account::handle(
        &w.state,
        post("/auth/password-reset", &json!({"email": stranger})),
        NOW,
    )
    .await;
    assert_eq!(unknown.body().as_ref(), resp.body().as_ref());
    assert_eq!(w.counter.total(), 2, "{:?}", w.counter.by_operation());
    assert!(mails(&stranger).await.is_empty());

    // A newer link voids the older; a link is refused once 30 minutes have passed.
    assert_eq!(request(NOW + 60).await.status(), 202);
    let second = last_token(&email).await;
    assert_ne!(first, second);
    assert_eq!(
        json_of(&confirm(first, NOW + 61).await)["error"]["code"],
        "INVALID_LINK"
    );
    assert_eq!(
        json_of(&confirm(second.clone(), NOW + 60 + RESET_TTL).await)["error"]["code"],
        "INVALID_LINK"
    );
    // A weak password is refused before anything is used up.
    let weak = portcullis::account::handle(
        &w.state,
        post(
            "/auth/password-reset/confirm",
            &json!({"token": second, "password": "password1"}),
        ),
        NOW + 62,
    )
    .await;
    assert_eq!(json_of(&weak)["error"]["code"], "WEAK_PASSWORD");
    // Lockout cleared by the reset.
    w.state.users.lock(&email, NOW + 10_000).await.unwrap();
    let ok = confirm(second.clone(), NOW + 63).await;
    assert_eq!(ok.status(), 200, "{:?}", ok.body());
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert!(!user.is_locked(NOW + 64));
    assert!(user.reset_token_hash.is_none());
    assert_eq!(user.sessions_not_before, Some(NOW + 63));
    assert_eq!(
        json_of(&confirm(second, NOW + 64).await)["error"]["code"],
        "INVALID_LINK"
    );
    let notice = mails(&email).await.pop().unwrap();
    assert!(notice.0.contains("password was changed"), "{}", notice.0);
}

#[tokio::test]
async fn a_mail_that_cannot_be_sent_leaves_nothing_behind() {
    let w = world(&[]).await;
    // The same stores, but a sender SES does not know: every send fails.
    let mut config = w.state.config.clone();
    config.mail_from = "unregistered@nowhere.test".into();
    let state =
        portcullis::state::AppState::new(config, w.state.aws.clone(), w.state.tokens.ring());
    let email = unique_email("acct-mailfail");
    let body = json!({"email": email, "password": PASSWORD});
    let resp = portcullis::account::handle(&state, post("/auth/register", &body), NOW).await;
    assert_eq!(resp.status(), 503);
    assert!(
        w.state.users.get(&email).await.unwrap().is_none(),
        "the new account is removed again"
    );
    // An existing address fails the same way (nothing to tell them apart).
    let known = unique_email("acct-mailfail-known");
    w.user(&known, PASSWORD, "user").await;
    let resp2 = portcullis::account::handle(
        &state,
        post(
            "/auth/register",
            &json!({"email": known, "password": PASSWORD}),
        ),
        NOW,
    )
    .await;
    assert_eq!(resp2.status(), 503);
    assert_eq!(resp.body().as_ref(), resp2.body().as_ref());
    // A reset whose mail fails leaves no usable link.
    let reset = portcullis::account::handle(
        &state,
        post("/auth/password-reset", &json!({"email": known})),
        NOW,
    )
    .await;
    assert_eq!(reset.status(), 503);
    let user = w.state.users.get(&known).await.unwrap().unwrap();
    assert!(user.reset_token_hash.is_none());
}

#[tokio::test]
async fn requests_per_address_are_limited_and_sign_up_can_be_off() {
    let w = world(&[]).await;
    let email = unique_email("acct-limit");
    for i in 0..3 {
        let resp = portcullis::account::handle(
            &w.state,
            post("/auth/password-reset", &json!({"email": email})),
            NOW + i,
        )
        .await;
        assert_eq!(resp.status(), 202);
    }
    let limited = portcullis::account::handle(
        &w.state,
        post("/auth/password-reset", &json!({"email": email})),
        NOW + 3,
    )
    .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let off = world(&[("SELF_SIGNUP", "off")]).await;
    let resp = portcullis::account::handle(
        &off.state,
        post(
            "/auth/register",
            &json!({"email": unique_email("acct-off"), "password": PASSWORD}),
        ),
        NOW,
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(off.counter.total(), 0);
}
