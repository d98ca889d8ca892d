//! The account lifecycle over HTTP through `cargo lambda watch` (the `account`, `login` and
//! `refresh` functions), following the mails moto's SES holds (scripts/moto-server.py's
//! `GET /_test/ses/messages`): sign-up → verify → login, the same answer for known and unknown
//! addresses, password reset (single use, newest wins, bound to its address, every old
//! session ended), password change (this session kept, the others ended), resend, and the
//! operator's CLI commands.
//!
//! The stack runs with `SELF_SIGNUP=on`, `MAIL_FROM=no-reply@portcullis.test`, the default
//! product name, link URLs under `WEB_BASE_URL`, the default per-address limit (3 per 15 min
//! per operation: no test here asks more than twice for one address) and production argon2.
//! No test sleeps: link expiry (24 h, 30 min) is tested in-process with the clock passed in
//! (tests/integration/account.rs).

use base64::Engine as _;
use portcullis_tests::{
    aws_endpoint, cli, function_url, https_client, remember_secret, unique_email, watch_env,
};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse!";
const NEW_PASSWORD: &str = "Another-g00d-passphrase";
const PRODUCT: &str = "Portcullis";
const SENDER: &str = "no-reply@portcullis.test";

// ---------------------------------------------------------------------------------------
// support

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

    /// The token pair of a 200 with `{"data": {"tokens": ...}}` (access, refresh).
    fn tokens(&self) -> (String, String) {
        assert_eq!(self.status, 200, "{}", self.text);
        let body = self.json();
        let tokens = &body["data"]["tokens"];
        assert_eq!(tokens["tokenType"], "Bearer", "{body}");
        let access = tokens["accessToken"].as_str().unwrap().to_owned();
        let refresh = tokens["refreshToken"].as_str().unwrap().to_owned();
        assert_eq!(access.split('.').count(), 3);
        assert_eq!(refresh.split('.').count(), 3);
        (access, refresh)
    }
}

/// `POST url` with a JSON body and an optional bearer; every token in the answer is noted.
async fn post(url: &str, body: &Value, bearer: Option<&str>) -> Reply {
    let mut req = https_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = bearer {
        remember_secret(token);
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = req.send().await.unwrap();
    let reply = Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    };
    if let Ok(v) = serde_json::from_str::<Value>(&reply.text) {
        for t in ["accessToken", "refreshToken"] {
            remember_secret(v["data"]["tokens"][t].as_str().unwrap_or_default());
        }
    }
    reply
}

/// `POST` to the account function's `path` (`auth/register`, ...).
async fn account(path: &str, body: &Value) -> Reply {
    post(&format!("{}{path}", function_url("account")), body, None).await
}

async fn register(email: &str, password: &str) -> Reply {
    remember_secret(password);
    account(
        "auth/register",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn login(email: &str, password: &str) -> Reply {
    remember_secret(password);
    post(
        &function_url("login"),
        &json!({"email": email, "password": password}),
        None,
    )
    .await
}

async fn refresh(token: &str) -> Reply {
    remember_secret(token);
    post(
        &function_url("refresh"),
        &json!({"refreshToken": token}),
        None,
    )
    .await
}

async fn verify(token: &str) -> Reply {
    remember_secret(token);
    account("auth/verify-email", &json!({"token": token})).await
}

async fn reset_request(email: &str) -> Reply {
    account("auth/password-reset", &json!({"email": email})).await
}

async fn reset_confirm(token: &str, password: &str) -> Reply {
    remember_secret(token);
    remember_secret(password);
    account(
        "auth/password-reset/confirm",
        &json!({"token": token, "password": password}),
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

/// The one answer of register, resend and reset-request: 202 and exactly this body.
#[track_caller]
fn assert_accepted(reply: &Reply) {
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"data": {"status": "accepted", "message": "If the address can receive this, a mail is on its way."}})
    );
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "no-store");
}

/// Two answers an observer cannot tell apart: status, body bytes and the headers that matter.
#[track_caller]
fn assert_same_answer(a: &Reply, b: &Reply) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.text.as_bytes(), b.text.as_bytes());
    for h in ["content-type", "cache-control", "content-length"] {
        assert_eq!(a.headers.get(h), b.headers.get(h), "{h}");
    }
    let names = |r: &Reply| {
        let mut n: Vec<String> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        n.sort();
        n
    };
    assert_eq!(names(a), names(b));
}

/// A mail as moto's SES holds it.
#[derive(Debug, Clone)]
struct Mail {
    subject: String,
    body: String,
}

/// The mails sent to `to`, oldest first (the sender checked on each).
async fn mails(to: &str) -> Vec<Mail> {
    let all: Value = reqwest::get(format!("{}/_test/ses/messages", aws_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == to))
        })
        .map(|m| {
            assert_eq!(m["source"], SENDER, "{m}");
            assert_eq!(m["destinations"]["ToAddresses"], json!([to]), "{m}");
            let body = m["body"].as_str().unwrap().to_owned();
            // A mail that carries a link is a secret.
            if let Some(link) = link_in(&body) {
                remember_secret(&link);
                remember_secret(&token_of(&link));
            }
            Mail {
                subject: m["subject"].as_str().unwrap().to_owned(),
                body,
            }
        })
        .collect()
}

/// The link with a token in a mail body (`...#token=...`), if any.
fn link_in(body: &str) -> Option<String> {
    let at = body.find("#token=")?;
    let start = body[..at].rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let end = body[at..]
        .find(char::is_whitespace)
        .map_or(body.len(), |i| at + i);
    Some(body[start..end].to_owned())
}

/// The token of a link (after `#token=`).
fn token_of(link: &str) -> String {
    let token = link
        .split_once("#token=")
        .expect("a token link")
        .1
        .to_owned();
    remember_secret(&token);
    token
}

fn web_base() -> String {
    watch_env()["WEB_BASE_URL"].trim_end_matches('/').to_owned()
}

/// The verification mail: its subject, its link (under `WEB_BASE_URL/verify-email`) and the
/// token in it.
#[track_caller]
fn verify_token_of(mail: &Mail) -> String {
    assert_eq!(
        mail.subject,
        format!("Confirm your email address for {PRODUCT}")
    );
    let link = link_in(&mail.body).expect("a link in the verification mail");
    let prefix = format!("{}/verify-email#token=", web_base());
    assert!(link.starts_with(&prefix), "unexpected link location");
    assert!(
        mail.body.contains("within 24 hours"),
        "the mail states the TTL"
    );
    token_of(&link)
}

/// The reset mail: subject, link (under `WEB_BASE_URL/reset-password`), token.
#[track_caller]
fn reset_token_of(mail: &Mail) -> String {
    assert_eq!(mail.subject, format!("Reset your {PRODUCT} password"));
    let link = link_in(&mail.body).expect("a link in the reset mail");
    let prefix = format!("{}/reset-password#token=", web_base());
    assert!(link.starts_with(&prefix), "unexpected link location");
    assert!(
        mail.body.contains("within 30 minutes"),
        "the mail states the TTL"
    );
    token_of(&link)
}

/// `token` with its address part replaced by `email`'s (the random part kept).
fn for_other_address(token: &str, email: &str) -> String {
    let (_, random) = token.split_once('.').unwrap();
    let forged = format!(
        "{}.{random}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(email.as_bytes())
    );
    remember_secret(&forged);
    forged
}

/// An operator-made (verified) account with `PASSWORD`.
fn create_user(email: &str) {
    portcullis_tests::cli_create_user(email, PASSWORD, "user");
}

// ---------------------------------------------------------------------------------------
// sign-up and verification

#[tokio::test]
async fn register_verify_then_login() {
    let email = unique_email("ha-signup");
    let reply = register(&email, PASSWORD).await;
    assert_accepted(&reply);
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 1, "one verification mail");
    let token = verify_token_of(&sent[0]);

    // Not verified yet: the right password gets 403 EMAIL_NOT_VERIFIED, a wrong one the
    // usual 401 (the state is only told to someone who has the password).
    assert_error(&login(&email, PASSWORD).await, 403, "EMAIL_NOT_VERIFIED");
    assert_error(
        &login(&email, "Wr0ng-horse-battery").await,
        401,
        "INVALID_CREDENTIALS",
    );

    let ok = verify(&token).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json(), json!({"data": {"verified": true}}));
    assert_error(&verify(&token).await, 400, "INVALID_LINK");
    // A made-up token, and a token whose address part names nobody.
    assert_error(&verify("garbage").await, 400, "INVALID_LINK");
    assert_error(
        &verify(&for_other_address(&token, &unique_email("ha-nobody"))).await,
        400,
        "INVALID_LINK",
    );

    login(&email, PASSWORD).await.tokens();
    assert_eq!(mails(&email).await.len(), 1, "no further mail");
}

#[tokio::test]
async fn register_with_a_taken_address_answers_the_same_and_changes_nothing() {
    let taken = unique_email("ha-taken");
    create_user(&taken);
    let fresh = unique_email("ha-fresh");
    let other_password = "A-different-passphrase-9";

    let unknown = register(&fresh, other_password).await;
    let known = register(&taken, other_password).await;
    assert_accepted(&unknown);
    assert_same_answer(&unknown, &known);

    // The fresh address got a verification link; the taken one a notice with no link.
    let fresh_mail = mails(&fresh).await;
    assert_eq!(fresh_mail.len(), 1);
    verify_token_of(&fresh_mail[0]);
    let taken_mail = mails(&taken).await;
    assert_eq!(taken_mail.len(), 1);
    assert_eq!(
        taken_mail[0].subject,
        format!("Someone tried to register with your address at {PRODUCT}")
    );
    assert!(!taken_mail[0].body.contains("#token="));
    assert!(
        taken_mail[0]
            .body
            .contains(&format!("{}/reset-password", web_base())),
        "the notice points at the reset page"
    );

    // The existing account is untouched: its password still works, the other one does not.
    login(&taken, PASSWORD).await.tokens();
    assert_error(
        &login(&taken, other_password).await,
        401,
        "INVALID_CREDENTIALS",
    );
}

#[tokio::test]
async fn weak_and_common_passwords_are_refused_at_sign_up_and_nothing_is_stored() {
    for password in ["password123", "qwertyuiop", "short1"] {
        let email = unique_email("ha-weak");
        let reply = register(&email, password).await;
        assert_error(&reply, 400, "WEAK_PASSWORD");
        assert_error(&login(&email, password).await, 401, "INVALID_CREDENTIALS");
        assert!(mails(&email).await.is_empty(), "no mail for {email}");
    }
}

#[tokio::test]
async fn resend_replaces_the_link_and_says_nothing_for_verified_accounts() {
    let email = unique_email("ha-resend");
    assert_accepted(&register(&email, PASSWORD).await);
    let first = verify_token_of(&mails(&email).await[0]);

    let again = account("auth/verify-email/resend", &json!({"email": email})).await;
    assert_accepted(&again);
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 2, "a second verification mail");
    let second = verify_token_of(&sent[1]);
    assert_ne!(first, second);

    // The newer link voids the older.
    assert_error(&verify(&first).await, 400, "INVALID_LINK");
    let ok = verify(&second).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    login(&email, PASSWORD).await.tokens();

    // Verified now: the same 202, no mail. An unknown address: the same again, no mail.
    let verified = account("auth/verify-email/resend", &json!({"email": email})).await;
    assert_same_answer(&again, &verified);
    assert_eq!(
        mails(&email).await.len(),
        2,
        "no mail for a verified account"
    );
    let nobody = unique_email("ha-resend-nobody");
    let unknown = account("auth/verify-email/resend", &json!({"email": nobody})).await;
    assert_same_answer(&again, &unknown);
    assert!(mails(&nobody).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// password reset

#[tokio::test]
async fn reset_by_mail_ends_every_session_and_each_link_works_once() {
    let email = unique_email("ha-reset");
    create_user(&email);
    let other = unique_email("ha-reset-other");
    create_user(&other);
    // Two sessions from before the reset.
    let (_, old_refresh_1) = login(&email, PASSWORD).await.tokens();
    let (_, old_refresh_2) = login(&email, PASSWORD).await.tokens();

    // Unknown address first, then the known one: the same answer, mail only for the known.
    let nobody = unique_email("ha-reset-nobody");
    let unknown = reset_request(&nobody).await;
    let known = reset_request(&email).await;
    assert_accepted(&known);
    assert_same_answer(&unknown, &known);
    assert!(
        mails(&nobody).await.is_empty(),
        "no mail for an unknown address"
    );
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 1);
    let older = reset_token_of(&sent[0]);

    // A newer request voids the older link.
    assert_accepted(&reset_request(&email).await);
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 2);
    let token = reset_token_of(&sent[1]);
    assert_ne!(older, token);
    assert_error(
        &reset_confirm(&older, NEW_PASSWORD).await,
        400,
        "INVALID_LINK",
    );

    // A link is bound to its address: the random part under another user's address (who has
    // a link of their own in force) is refused both ways, and nothing is used up.
    assert_accepted(&reset_request(&other).await);
    let other_token = reset_token_of(&mails(&other).await[0]);
    assert_error(
        &reset_confirm(&for_other_address(&token, &other), NEW_PASSWORD).await,
        400,
        "INVALID_LINK",
    );
    assert_error(
        &reset_confirm(&for_other_address(&other_token, &email), NEW_PASSWORD).await,
        400,
        "INVALID_LINK",
    );
    login(&other, PASSWORD).await.tokens();

    // A weak new password is refused before the link is used up.
    assert_error(
        &reset_confirm(&token, "password123").await,
        400,
        "WEAK_PASSWORD",
    );

    let ok = reset_confirm(&token, NEW_PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json(), json!({"data": {"reset": true}}));
    assert_error(
        &reset_confirm(&token, "Yet-another-passphrase-7").await,
        400,
        "INVALID_LINK",
    );

    // The old password is refused, every refresh token from before is refused, the new
    // password works.
    assert_error(&login(&email, PASSWORD).await, 401, "INVALID_CREDENTIALS");
    for old in [&old_refresh_1, &old_refresh_2] {
        assert_error(&refresh(old).await, 401, "INVALID_REFRESH_TOKEN");
    }
    let (_, fresh_refresh) = login(&email, NEW_PASSWORD).await.tokens();
    refresh(&fresh_refresh).await.tokens();

    // The notice.
    let sent = mails(&email).await;
    assert_eq!(sent.len(), 3, "two reset mails and the notice");
    let notice = &sent[2];
    assert_eq!(
        notice.subject,
        format!("Your {PRODUCT} password was changed")
    );
    assert!(notice.body.contains("was reset"), "{}", notice.body);
    assert!(!notice.body.contains("#token="));

    // The other user's own link still works.
    let ok = reset_confirm(&other_token, NEW_PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    login(&other, NEW_PASSWORD).await.tokens();
}

// Expired reset (30 min) and verification (24 h) links: in-process with the clock passed in
// (tests/integration/account.rs `reset_links_expire_work_once_and_the_newest_wins`,
// `sign_up_verify_and_the_requests_each_step_makes`); over HTTP that would need a sleep.

// ---------------------------------------------------------------------------------------
// password change

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let email = unique_email("ha-change");
    create_user(&email);
    let (access_a, refresh_a) = login(&email, PASSWORD).await.tokens();
    let (_, refresh_b) = login(&email, PASSWORD).await.tokens();
    let url = format!("{}auth/password", function_url("account"));
    remember_secret(NEW_PASSWORD);

    // No bearer, a wrong current password.
    assert_error(
        &post(
            &url,
            &json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
            None,
        )
        .await,
        401,
        "MISSING_TOKEN",
    );
    let wrong = post(
        &url,
        &json!({"currentPassword": "Wr0ng-horse-battery", "newPassword": NEW_PASSWORD}),
        Some(&access_a),
    )
    .await;
    remember_secret("Wr0ng-horse-battery");
    assert_error(&wrong, 401, "INVALID_CREDENTIALS");
    // A common new password.
    assert_error(
        &post(
            &url,
            &json!({"currentPassword": PASSWORD, "newPassword": "qwertyuiop"}),
            Some(&access_a),
        )
        .await,
        400,
        "WEAK_PASSWORD",
    );

    let ok = post(
        &url,
        &json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
        Some(&access_a),
    )
    .await;
    let (_, new_refresh) = ok.tokens();
    let body = ok.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"].as_object().unwrap().len(), 1, "{body}");
    assert_ne!(new_refresh, refresh_a);

    // The other session and this session's old refresh token are over; the new pair works.
    assert_error(&refresh(&refresh_b).await, 401, "INVALID_REFRESH_TOKEN");
    assert_error(&refresh(&refresh_a).await, 401, "INVALID_REFRESH_TOKEN");
    refresh(&new_refresh).await.tokens();

    assert_error(&login(&email, PASSWORD).await, 401, "INVALID_CREDENTIALS");
    login(&email, NEW_PASSWORD).await.tokens();

    let sent = mails(&email).await;
    assert_eq!(sent.len(), 1, "the change notice");
    assert_eq!(
        sent[0].subject,
        format!("Your {PRODUCT} password was changed")
    );
    assert!(sent[0].body.contains("was changed"));
}

// ---------------------------------------------------------------------------------------
// the operator's CLI

#[tokio::test]
async fn cli_verify_lets_an_unverified_account_log_in() {
    let email = unique_email("ha-cli-verify");
    assert_accepted(&register(&email, PASSWORD).await);
    assert_error(&login(&email, PASSWORD).await, 403, "EMAIL_NOT_VERIFIED");
    let out = cli(&["user", "verify", "--email", &email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    login(&email, PASSWORD).await.tokens();
    // The mailed link was voided by the operator's verification.
    let token = verify_token_of(&mails(&email).await[0]);
    assert_error(&verify(&token).await, 400, "INVALID_LINK");

    let nobody = unique_email("ha-cli-nobody");
    let out = cli(&["user", "verify", "--email", &nobody], None);
    assert!(!out.status.success(), "no such user");
}

#[tokio::test]
async fn cli_reset_link_resets_the_password_over_http() {
    let email = unique_email("ha-cli-reset");
    create_user(&email);
    let (_, old_refresh) = login(&email, PASSWORD).await.tokens();
    let out = cli(&["user", "reset-password", "--email", &email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    remember_secret(&link);
    assert!(
        link.starts_with(&format!("{}/reset-password#token=", web_base())),
        "unexpected link location"
    );
    let token = token_of(&link);
    assert!(mails(&email).await.is_empty(), "the CLI sends no mail");

    let ok = reset_confirm(&token, NEW_PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json(), json!({"data": {"reset": true}}));
    assert_error(
        &reset_confirm(&token, NEW_PASSWORD).await,
        400,
        "INVALID_LINK",
    );
    assert_error(&refresh(&old_refresh).await, 401, "INVALID_REFRESH_TOKEN");
    assert_error(&login(&email, PASSWORD).await, 401, "INVALID_CREDENTIALS");
    login(&email, NEW_PASSWORD).await.tokens();

    let out = cli(
        &[
            "user",
            "reset-password",
            "--email",
            &unique_email("ha-cli-nobody"),
        ],
        None,
    );
    assert!(!out.status.success(), "no such user");
    assert!(out.stdout.is_empty());
}
