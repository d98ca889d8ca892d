//! A person in a real browser: headless Chromium (Debian's, driven by playwright-core) signs in
//! on the `web` function's pages, consents, and a third-party site running panva/openid-client
//! gets tokens with the authorization code grant, PKCE and OpenID Connect; then replays, CSRF,
//! framing and sign-out. The flow is tests/interop/browser_flow.mjs; this test makes the user
//! and the two clients (confidential and public) with the CLI, runs it, and asserts on its
//! one-line JSON report. Its screenshots go to target/browser-screenshots/.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use portcullis_tests::{cli, remember_secret, tls_function_url, unique_email, watch_env};
use serde_json::{Value, json};

const PASSWORD: &str = "Corr3ct-horse-browser!";
const SCOPES: &str = "openid,email,profile:read";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A port free on 127.0.0.1 right now, for the relying party (its redirect URI names it).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn create_user(email: &str) {
    portcullis_tests::cli_create_user(email, PASSWORD, "user");
}

/// `portcullis --json client create` for an authorization-code client: (id, secret), the
/// secret none for a public client.
fn create_client(name: &str, redirect_uri: &str, public: bool) -> (String, Option<String>) {
    let mut args = vec![
        "--json",
        "client",
        "create",
        "--name",
        name,
        "--scopes",
        SCOPES,
        "--grants",
        "authorization_code,refresh_token",
        "--redirect-uri",
        redirect_uri,
    ];
    if public {
        args.push("--public");
    }
    let out = cli(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = doc["clientSecret"].as_str().map(str::to_owned);
    if let Some(secret) = &secret {
        remember_secret(secret);
    }
    assert_eq!(
        secret.is_none(),
        public,
        "public {public}: {}",
        doc["public"]
    );
    assert_eq!(
        doc["grants"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(doc["redirectUris"], json!([redirect_uri]));
    (doc["clientId"].as_str().unwrap().to_owned(), secret)
}

/// A space-separated scope string as a set (the order is not part of the contract).
fn scopes(value: &Value) -> BTreeSet<&str> {
    value
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

#[test]
fn a_person_signs_in_and_consents_in_chromium_and_the_relying_party_gets_tokens() {
    let env = watch_env();
    let issuer = env["JWT_ISSUER"].clone();
    let oauth_base = env["OAUTH_ENDPOINT_BASE"].clone();
    let web = tls_function_url("web").trim_end_matches('/').to_owned();
    let gateway = std::env::var("PORTCULLIS_TEST_GATEWAY_URL").expect("the stack's gateway");
    let rp_port = free_port();
    let redirect_uri = format!("http://127.0.0.1:{rp_port}/callback");
    let email = unique_email("browser");
    create_user(&email);
    let (client_id, secret) = create_client("Test RP", &redirect_uri, false);
    let (public_id, _) = create_client("Test RP (public)", &redirect_uri, true);
    let shots = root().join("target/browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots); // no stale picture passes for this run's
    std::fs::create_dir_all(&shots).unwrap();

    // Secrets go by environment, not argv. The script notes every token, code and cookie it
    // sees in PORTCULLIS_TEST_SECRETS_FILE (inherited), for the suite's log scan.
    let out = Command::new("node")
        .arg(root().join("tests/interop/browser_flow.mjs"))
        .current_dir(root())
        .env("PORTCULLIS_ISSUER", &issuer)
        .env("PORTCULLIS_WEB_BASE", &web)
        .env("PORTCULLIS_GATEWAY_URL", &gateway)
        .env("PORTCULLIS_RP_PORT", rp_port.to_string())
        .env("PORTCULLIS_CLIENT_ID", &client_id)
        .env("PORTCULLIS_CLIENT_SECRET", secret.as_deref().unwrap())
        .env("PORTCULLIS_CLIENT_NAME", "Test RP")
        .env("PORTCULLIS_PUBLIC_CLIENT_ID", &public_id)
        .env("PORTCULLIS_PUBLIC_CLIENT_NAME", "Test RP (public)")
        .env("PORTCULLIS_USER_EMAIL", &email)
        .env("PORTCULLIS_USER_PASSWORD", PASSWORD)
        .env("PORTCULLIS_SCREENSHOT_DIR", &shots)
        .output()
        .expect("run node tests/interop/browser_flow.mjs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let what = format!(
        "browser_flow.mjs ({}); screenshots in {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status,
        shots.display()
    );
    assert!(out.status.success(), "{what}");
    let r: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {what}"));
    for shot in r["screenshots"].as_array().expect("screenshots") {
        let path = shot.as_str().unwrap();
        println!("screenshot: {path}");
        assert!(std::path::Path::new(path).is_file(), "{path}: {what}");
    }
    assert_eq!(r["ok"], true, "{what}");

    // 1: discovery and sign-in
    let d = &r["discovery"];
    assert_eq!(d["issuer"], issuer.as_str(), "{what}");
    assert_eq!(
        d["authorization_endpoint"],
        format!("{web}/oauth/authorize"),
        "{what}"
    );
    assert_eq!(
        d["token_endpoint"],
        format!("{oauth_base}/oauth/token"),
        "{what}"
    );
    assert_eq!(
        d["userinfo_endpoint"],
        format!("{oauth_base}/oauth/userinfo"),
        "{what}"
    );
    assert_eq!(
        d["code_challenge_methods_supported"],
        json!(["S256"]),
        "{what}"
    );
    assert_eq!(
        d["authorization_response_iss_parameter_supported"], true,
        "{what}"
    );
    let s = &r["signin"];
    assert_eq!(s["authorize_redirect"]["status"], 303, "{what}");
    assert_eq!(s["landed_on"], format!("{web}/auth/signin"), "{what}");
    assert_eq!(s["return_to_present"], true, "{what}");
    assert_eq!(s["wrong_password_status"], 401, "{what}");
    assert_eq!(s["alert_visible"], true, "{what}");
    assert_eq!(s["session_cookie_after_wrong_password"], false, "{what}");
    assert_eq!(s["success_redirects"][0]["status"], 303, "{what}");
    // __Host- cookies: Secure, Path=/, no Domain; the session one out of scripts' reach
    for (name, http_only) in [("session", true), ("csrf", false)] {
        let c = &r["cookies"][name];
        assert_eq!(
            (
                &c["httpOnly"],
                &c["secure"],
                &c["sameSite"],
                &c["path"],
                &c["hostOnly"]
            ),
            (
                &json!(http_only),
                &json!(true),
                &json!("Lax"),
                &json!("/"),
                &json!(true)
            ),
            "{name} cookie: {what}"
        );
    }

    // 2: the consent pages refuse to be framed and name the client
    for (consent, name) in [
        (&r["consent"], "Test RP"),
        (&r["public_client"]["consent"], "Test RP (public)"),
    ] {
        assert!(
            consent["x_frame_options"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("deny")),
            "{name}: {what}"
        );
        assert_eq!(consent["csp_frame_ancestors_none"], true, "{name}: {what}");
        assert_eq!(consent["names_client"], true, "{name}: {what}");
        assert_eq!(
            (&consent["allow_button"], &consent["deny_button"]),
            (&json!(true), &json!(true)),
            "{name}: {what}"
        );
    }

    // 3: the code exchange, userinfo, refresh, whoami through the gateway
    let f = &r["code_flow"];
    let sub = f["sub"].as_str().filter(|s| !s.is_empty()).expect(&what);
    for check in [
        "callback_has_iss",
        "aud_is_client",
        "iss_matches",
        "nonce_matched",
        "auth_time_present",
        "access_token_is_jwt",
        "has_refresh_token",
    ] {
        assert_eq!(f[check], true, "{check}: {what}");
    }
    assert!(
        f["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{what}"
    );
    assert_eq!(
        scopes(&f["scope"]),
        BTreeSet::from(["openid", "email", "profile:read"]),
        "{what}"
    );
    assert_eq!(r["userinfo"]["sub_matches"], true, "{what}");
    assert_eq!(r["userinfo"]["email"], email.as_str(), "{what}");
    assert_eq!(r["refresh"]["access_changed"], true, "{what}");
    assert_eq!(r["refresh"]["refresh_changed"], true, "{what}");
    assert_eq!(r["whoami"]["status"], 200, "{what}");
    let principal = &r["whoami"]["principal"];
    assert_eq!(principal["authType"], "oauth", "{what}");
    assert_eq!(principal["clientId"], client_id.as_str(), "{what}");
    assert_eq!(
        principal["principalId"], sub,
        "the user the client acts for: {what}"
    );
    assert_eq!(principal["userId"], sub, "{what}");
    let remembered = &r["remembered_consent"];
    assert_eq!(remembered["consent_page_shown"], false, "{what}");
    assert_eq!(remembered["exchange_ok"], true, "{what}");

    // 4: a spent code and a spent refresh token
    assert_eq!(
        r["replay"],
        json!({"code_error": "invalid_grant", "refresh_error": "invalid_grant"}),
        "{what}"
    );

    // 5: the public client: Deny, then Allow, the exchange without a secret
    let p = &r["public_client"];
    assert_eq!(p["deny_error"], "access_denied", "{what}");
    assert_eq!(p["deny_has_code"], false, "{what}");
    assert_eq!(p["exchange_ok"], true, "{what}");
    assert_eq!(p["sub_matches"], true, "{what}");
    assert_eq!(p["aud_is_client"], true, "{what}");

    // 6: CSRF and framing
    let c = &r["csrf"];
    assert_eq!(
        (
            &c["missing_status"],
            &c["wrong_status"],
            &c["session_cookie_set"]
        ),
        (&json!(403), &json!(403), &json!(false)),
        "{what}"
    );
    for (place, seen) in r["framing"].as_object().expect(&what) {
        assert_eq!(seen["consent_form_rendered"], false, "{place}: {what}");
    }
    // same-origin, the session cookie went along: the consent page came and was refused
    assert_eq!(
        r["framing"]["same_origin"]["framed_response"]["status"], 200,
        "{what}"
    );

    // 7: sign-out ends the session: its old cookie no longer signs anyone in
    let o = &r["signout"];
    assert_eq!(o["signed_in_page"], true, "{what}");
    assert_eq!(o["still_signed_in"], false, "{what}");
    assert_eq!(o["signin_after_shows_form"], true, "{what}");
    assert_eq!(o["replay_shows_form"], true, "{what}");
    assert_eq!(o["replay_signed_in"], false, "{what}");
    assert_eq!(
        o["replay_authorize_lands_on"],
        format!("{web}/auth/signin"),
        "{what}"
    );
}
