//! The TOTP second factor in-process against the emulator, with the clock passed in: the
//! enrolment, login's second step and its DynamoDB requests, replay and skew, concurrent
//! presentations of one code, lockout, recovery codes, what the table holds, the tokens'
//! `amr`/`acr` through refresh, the authorizer's `mfa` rule, and browser sign-in's code page.

use lambda_http::{Body, Request, Response};
use portcullis::authorizer::Authorizer;
use portcullis::totp::{Hash, code_at};
use portcullis_tests::{World, remember_secret, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_010;
const PASSWORD: &str = "Corr3ct-horse!";

fn request(method: &str, path: &str, bearer: Option<&str>, body: &Value) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://auth.test{path}"))
        .header("content-type", "application/json");
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::Text(body.to_string())).unwrap()
}

fn json_of(resp: &Response<Body>) -> Value {
    let bytes: &[u8] = resp.body().as_ref();
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap()
    }
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

struct Enrolled {
    w: World,
    email: String,
    secret: Vec<u8>,
    recovery: Vec<String>,
}

impl Enrolled {
    fn code(&self, at: i64) -> String {
        code_at(&self.secret, at, Hash::Sha1, 6)
    }

    async fn login(&self, now: i64) -> Response<Body> {
        portcullis::handlers::login(
            &self.w.state,
            request(
                "POST",
                "/auth/login",
                None,
                &json!({"email": self.email, "password": PASSWORD}),
            ),
            now,
        )
        .await
    }

    /// The password step: the challenge of MFA_REQUIRED.
    async fn challenge(&self, now: i64) -> String {
        let resp = self.login(now).await;
        assert_eq!(resp.status(), 401);
        let body = json_of(&resp);
        assert_eq!(body["error"]["code"], "MFA_REQUIRED", "{body}");
        assert!(body.get("data").is_none());
        let c = body["error"]["challenge"].as_str().unwrap().to_owned();
        remember_secret(&c);
        c
    }

    async fn second(&self, challenge: &str, factor: Value, now: i64) -> Response<Body> {
        let mut body = factor;
        body["challenge"] = json!(challenge);
        portcullis::mfa::handle(
            &self.w.state,
            request("POST", "/auth/login/mfa", None, &body),
            now,
        )
        .await
    }
}

fn remember_tokens(body: &Value) {
    for name in ["accessToken", "refreshToken"] {
        if let Some(t) = body["data"]["tokens"][name].as_str() {
            remember_secret(t);
        }
    }
}

async fn enrolled() -> Enrolled {
    // Many logins from one test "IP": the per-IP limit is tested elsewhere.
    let w = World::new(&[("LOGIN_RATE_LIMIT", "1000/900")]).await;
    let email = unique_email("mfa");
    w.user(&email, PASSWORD, "admin").await;
    let login = portcullis::handlers::login(
        &w.state,
        request(
            "POST",
            "/auth/login",
            None,
            &json!({"email": email, "password": PASSWORD}),
        ),
        NOW - 100,
    )
    .await;
    let body = json_of(&login);
    remember_tokens(&body);
    let access = body["data"]["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&access)["amr"], json!(["pwd"]));
    assert_eq!(claims(&access)["acr"], "aal1");
    let enrol = portcullis::mfa::handle(
        &w.state,
        request("POST", "/auth/mfa/totp", Some(&access), &json!({})),
        NOW - 90,
    )
    .await;
    assert_eq!(enrol.status(), 200);
    let data = json_of(&enrol)["data"].clone();
    let b32 = data["secret"].as_str().unwrap().to_owned();
    remember_secret(&b32);
    assert!(
        data["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Portcullis:")
    );
    let secret = base32_decode(&b32);
    assert_eq!(secret.len(), 20, "160 bits");
    // The table holds the pending secret sealed: neither its bytes nor its base32.
    let stored = w.state.users.get(&email).await.unwrap().unwrap();
    let pending = stored.mfa.totp_pending.clone().unwrap();
    assert!(!pending.contains(&b32));
    assert!(!stored.mfa.is_active());
    let code = code_at(&secret, NOW - 90, Hash::Sha1, 6);
    remember_secret(&code);
    let confirm = portcullis::mfa::handle(
        &w.state,
        request(
            "POST",
            "/auth/mfa/totp/confirm",
            Some(&access),
            &json!({"code": code}),
        ),
        NOW - 90,
    )
    .await;
    assert_eq!(confirm.status(), 200, "{:?}", confirm.body());
    let recovery: Vec<String> = json_of(&confirm)["data"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    for c in &recovery {
        remember_secret(c);
    }
    let stored = w.state.users.get(&email).await.unwrap().unwrap();
    assert!(stored.mfa.is_active());
    assert!(stored.mfa.totp_pending.is_none());
    assert_eq!(stored.mfa.recovery_codes.len(), 10);
    for c in &recovery {
        assert!(
            !stored
                .mfa
                .recovery_codes
                .iter()
                .any(|d| d.contains(&c.replace('-', "")))
        );
    }
    w.counter.reset();
    Enrolled {
        w,
        email,
        secret,
        recovery,
    }
}

#[tokio::test]
async fn login_needs_the_second_step_and_counts_its_requests() {
    let e = enrolled().await;
    // Password step: rate limit + user read (concurrently), then the challenge's write.
    let challenge = e.challenge(NOW).await;
    let ops = e.w.counter.by_operation();
    assert_eq!(e.w.counter.total(), 3, "{ops:?}");
    assert_eq!(ops.get("UpdateItem"), Some(&2), "{ops:?}");
    e.w.counter.reset();
    let code = e.code(NOW);
    remember_secret(&code);
    let ok = e.second(&challenge, json!({"code": code}), NOW).await;
    assert_eq!(ok.status(), 200, "{:?}", ok.body());
    // Rate limit + user read, the accepting write, the refresh token's put (and the MFA key
    // from Secrets Manager once per container: not a DynamoDB request).
    let ops = e.w.counter.by_operation();
    assert_eq!(e.w.counter.total(), 4, "{ops:?}");
    let body = json_of(&ok);
    remember_tokens(&body);
    let access = body["data"]["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(claims(access)["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims(access)["acr"], "aal2");
    // Refresh keeps how the login authenticated.
    let refreshed = portcullis::session::refresh(
        &e.w.state,
        body["data"]["tokens"]["refreshToken"].as_str().unwrap(),
        "ip",
        NOW + 5,
    )
    .await
    .unwrap();
    remember_secret(&refreshed.tokens.access_token);
    remember_secret(&refreshed.tokens.refresh_token);
    assert_eq!(
        claims(&refreshed.tokens.access_token)["amr"],
        json!(["pwd", "otp", "mfa"])
    );
    assert_eq!(claims(&refreshed.tokens.refresh_token)["acr"], "aal2");

    // The challenge is single use; the code is single use even with a new challenge.
    let again = e.second(&challenge, json!({"code": code}), NOW + 1).await;
    assert_eq!(json_of(&again)["error"]["code"], "INVALID_MFA_CHALLENGE");
    let fresh = e.challenge(NOW + 2).await;
    let replay = e.second(&fresh, json!({"code": code}), NOW + 2).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(json_of(&replay)["error"]["code"], "INVALID_MFA_CODE");
    // The next step's code is accepted (±1 step of skew); two steps ahead is not.
    let far = e.code(NOW + 60);
    remember_secret(&far);
    let refused = e.second(&fresh, json!({"code": far}), NOW + 3).await;
    assert_eq!(json_of(&refused)["error"]["code"], "INVALID_MFA_CODE");
    let next = e.code(NOW + 30);
    remember_secret(&next);
    let ok = e.second(&fresh, json!({"code": next}), NOW + 3).await;
    assert_eq!(ok.status(), 200, "{:?}", ok.body());
    remember_tokens(&json_of(&ok));
    // A newer login voids the older challenge.
    let first = e.challenge(NOW + 40).await;
    let _second = e.challenge(NOW + 41).await;
    let stale = e
        .second(&first, json!({"code": e.code(NOW + 90)}), NOW + 90)
        .await;
    assert_eq!(json_of(&stale)["error"]["code"], "INVALID_MFA_CHALLENGE");
    // An expired challenge (5 minutes) is refused.
    let old = e.challenge(NOW + 100).await;
    let late = e
        .second(&old, json!({"code": e.code(NOW + 400)}), NOW + 400 + 10)
        .await;
    assert_eq!(json_of(&late)["error"]["code"], "INVALID_MFA_CHALLENGE");
}

#[tokio::test]
async fn one_code_presented_concurrently_logs_in_once() {
    let e = enrolled().await;
    let challenge = e.challenge(NOW).await;
    let code = e.code(NOW);
    remember_secret(&code);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let state = e.w.state.clone();
        let body = json!({"challenge": challenge, "code": code});
        tasks.push(tokio::spawn(async move {
            portcullis::mfa::handle(&state, request("POST", "/auth/login/mfa", None, &body), NOW)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        if resp.status() == 200 {
            ok += 1;
            remember_tokens(&json_of(&resp));
        } else {
            assert_eq!(resp.status(), 401);
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn wrong_codes_lock_the_account_like_wrong_passwords() {
    let e = enrolled().await;
    let challenge = e.challenge(NOW).await;
    let threshold = e.w.state.config.lockout_threshold;
    for i in 0..threshold {
        let resp = e
            .second(&challenge, json!({"code": "000000"}), NOW + i64::from(i))
            .await;
        assert_eq!(resp.status(), 401, "attempt {i}");
        assert_eq!(json_of(&resp)["error"]["code"], "INVALID_MFA_CODE");
    }
    let right = e.code(NOW + 10);
    remember_secret(&right);
    let locked = e.second(&challenge, json!({"code": right}), NOW + 10).await;
    assert_eq!(locked.status(), 423);
    assert_eq!(e.login(NOW + 11).await.status(), 423);
}

#[tokio::test]
async fn recovery_codes_work_once_and_removal_needs_a_factor() {
    let e = enrolled().await;
    let c = e.challenge(NOW).await;
    let ok = e
        .second(
            &c,
            json!({"recoveryCode": e.recovery[0].to_uppercase()}),
            NOW,
        )
        .await;
    assert_eq!(ok.status(), 200, "{:?}", ok.body());
    let body = json_of(&ok);
    remember_tokens(&body);
    let access = body["data"]["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&access)["amr"], json!(["pwd", "mfa"]));
    let stored = e.w.state.users.get(&e.email).await.unwrap().unwrap();
    assert_eq!(stored.mfa.recovery_codes.len(), 9);
    let c = e.challenge(NOW + 1).await;
    let again = e
        .second(&c, json!({"recoveryCode": e.recovery[0]}), NOW + 1)
        .await;
    assert_eq!(json_of(&again)["error"]["code"], "INVALID_MFA_CODE");

    // Removing the factor: a wrong code is refused and changes nothing; a recovery code does.
    let remove = |factor: Value, now: i64| {
        portcullis::mfa::handle(
            &e.w.state,
            request("DELETE", "/auth/mfa/totp", Some(&access), &factor),
            now,
        )
    };
    let wrong = remove(json!({"code": "123456"}), NOW + 2).await;
    assert_eq!(json_of(&wrong)["error"]["code"], "INVALID_MFA_CODE");
    assert!(
        e.w.state
            .users
            .get(&e.email)
            .await
            .unwrap()
            .unwrap()
            .mfa
            .is_active()
    );
    let gone = remove(json!({"recoveryCode": e.recovery[1]}), NOW + 3).await;
    assert_eq!(gone.status(), 204);
    let stored = e.w.state.users.get(&e.email).await.unwrap().unwrap();
    assert_eq!(stored.mfa, portcullis::store::users::Mfa::default());
    let plain = e.login(NOW + 4).await;
    assert_eq!(plain.status(), 200);
    remember_tokens(&json_of(&plain));
    let again = remove(json!({"code": "123456"}), NOW + 5).await;
    assert_eq!(again.status(), 409);
    assert_eq!(json_of(&again)["error"]["code"], "MFA_NOT_ENABLED");
}

#[tokio::test]
async fn the_mfa_route_rule_wants_a_second_factor() {
    let e = enrolled().await;
    let c = e.challenge(NOW).await;
    let code = e.code(NOW);
    remember_secret(&code);
    let mfa_body = json_of(&e.second(&c, json!({"code": code}), NOW).await);
    remember_tokens(&mfa_body);
    let mfa_token = mfa_body["data"]["tokens"]["accessToken"].as_str().unwrap();
    let password_token =
        e.w.state
            .tokens
            .issue_access("usr_x", "x@example.com", "admin", NOW)
            .unwrap()
            .token;
    let mut config = e.w.state.config.clone();
    config.authorizer_route_rules =
        portcullis::rules::RouteRule::parse_all("GET /admin/*=mfa").unwrap();
    let state =
        portcullis::state::AppState::new(config, e.w.state.aws.clone(), e.w.state.tokens.ring());
    let authorizer = Authorizer::new(state);
    let event = |token: &str, path: &str| {
        let mut ev: Value =
            serde_json::from_str(include_str!("../../events/authorizer-http.json")).unwrap();
        ev["routeArn"] = json!(format!(
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET{path}"
        ));
        ev["headers"] = json!({"authorization": format!("Bearer {token}")});
        ev
    };
    let admit = authorizer
        .handle(&event(mfa_token, "/admin/users"), NOW)
        .await
        .unwrap();
    assert_eq!(admit["isAuthorized"], true, "{admit}");
    assert_eq!(admit["context"]["mfa"], "true");
    let refuse = authorizer
        .handle(&event(&password_token, "/admin/users"), NOW)
        .await
        .unwrap();
    assert_eq!(refuse, json!({"isAuthorized": false}));
    let elsewhere = authorizer
        .handle(&event(&password_token, "/orders"), NOW)
        .await
        .unwrap();
    assert_eq!(elsewhere["isAuthorized"], true);
    assert_eq!(elsewhere["context"]["mfa"], "false");
}

#[tokio::test]
async fn browser_sign_in_asks_for_the_code() {
    let e = enrolled().await;
    let token = portcullis::web::random_token();
    let post = |form: Vec<(&str, String)>| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://auth.test/auth/signin")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://auth.test")
            .header(
                "cookie",
                format!("{}={token}", portcullis::web::SIGNIN_COOKIE),
            )
            .body(Body::Text(body))
            .unwrap()
    };
    let page = portcullis::web::handle(
        &e.w.state,
        post(vec![
            ("csrf", token.clone()),
            ("email", e.email.clone()),
            ("password", PASSWORD.into()),
        ]),
        NOW,
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(html.contains("Two-step verification"), "{html}");
    assert!(page.headers().get("set-cookie").is_none(), "no session yet");
    let marker = "name=\"challenge\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let challenge = html[start..start + html[start..].find('"').unwrap()].to_owned();
    remember_secret(&challenge);
    let wrong = portcullis::web::handle(
        &e.w.state,
        post(vec![
            ("csrf", token.clone()),
            ("challenge", challenge.clone()),
            ("code", "000000".into()),
        ]),
        NOW,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let code = e.code(NOW);
    remember_secret(&code);
    let ok = portcullis::web::handle(
        &e.w.state,
        post(vec![
            ("csrf", token.clone()),
            ("challenge", challenge),
            ("code", code),
        ]),
        NOW,
    )
    .await;
    assert_eq!(ok.status(), 303);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(portcullis::web::SESSION_COOKIE))
        .unwrap();
    let id = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    remember_secret(id);
    let stored =
        e.w.state
            .web
            .session(&portcullis::ids::digest(id))
            .await
            .unwrap()
            .unwrap();
    assert!(stored.mfa);
}
