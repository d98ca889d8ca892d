//! The web function, the code exchange and the authorizer's session credential in-process
//! against the emulator, with the clock passed in: DynamoDB requests per authorize and per
//! code exchange (counted), exactly one winner among concurrent redemptions of a code, the
//! idle and absolute session timeouts, and the session cookie behind the authorizer with its
//! CSRF header on unsafe methods.

use lambda_http::{Body, Request};
use portcullis::authorizer::{Authorizer, Failure};
use portcullis::store::clients::{self, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use portcullis::store::web::WebSession;
use portcullis::web::{CSRF_HEADER, SESSION_COOKIE, csrf_token, random_token, s256};
use portcullis_tests::{World, remember_secret, unique_email};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const REDIRECT: &str = "https://rp.example/cb";
const ORIGIN: &str = "https://auth.test";

struct Fixture {
    w: World,
    client_id: String,
    secret: String,
    session_id: String,
    user_id: String,
}

async fn fixture() -> Fixture {
    let w = World::new(&[]).await;
    let email = unique_email("web-inproc");
    let user = w.user(&email, "Corr3ct-horse!", "admin").await;
    let new = clients::generate_with(
        "In-process RP",
        vec![GRANT_AUTHORIZATION_CODE.into(), GRANT_REFRESH_TOKEN.into()],
        vec!["openid".into(), "email".into()],
        900,
        vec![REDIRECT.into()],
        false,
        NOW - 3600,
    );
    w.state.clients.create(&new.record).await.unwrap();
    let secret = new.secret.unwrap();
    remember_secret(&secret);
    let session_id = random_token();
    remember_secret(&session_id);
    w.state
        .web
        .create_session(&WebSession {
            id_hash: portcullis::ids::digest(&session_id),
            user_id: user.id.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            created_at: NOW,
            last_seen_at: NOW,
            expires_at: NOW + w.state.config.session_absolute,
            mfa: false,
        })
        .await
        .unwrap();
    w.counter.reset();
    Fixture {
        w,
        client_id: new.record.id,
        secret,
        session_id,
        user_id: user.id,
    }
}

fn get(uri: &str, cookie: Option<&str>) -> Request {
    let mut b = lambda_http::http::Request::builder().method("GET").uri(uri);
    if let Some(id) = cookie {
        b = b.header("cookie", format!("{SESSION_COOKIE}={id}"));
    }
    b.body(Body::Empty).unwrap()
}

fn post(uri: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Request {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut b = lambda_http::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", ORIGIN);
    if let Some(id) = cookie {
        b = b.header("cookie", format!("{SESSION_COOKIE}={id}"));
    }
    b.body(Body::Text(body)).unwrap()
}

fn authorize_params(client_id: &str, challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid email".into()),
        ("state", "s1".into()),
        ("nonce", "n1".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn query(params: &[(&str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn code_of(resp: &lambda_http::Response<Body>) -> String {
    assert_eq!(resp.status(), 302, "{:?}", resp.body());
    let location = resp.headers()["location"].to_str().unwrap();
    let q = location.split_once('?').unwrap().1;
    let code = form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    remember_secret(&code);
    code
}

fn exchange(f: &Fixture, code: &str, verifier: &str) -> Request {
    post(
        "https://auth.test/oauth/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", &f.client_id),
            ("client_secret", &f.secret),
        ],
    )
}

fn body_json(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test]
async fn dynamodb_requests_per_authorize_consent_and_code_exchange() {
    let f = fixture().await;
    let state = &f.w.state;
    let verifier = random_token();
    let params = authorize_params(&f.client_id, &s256(&verifier));
    let authorize = format!("https://auth.test/oauth/authorize?{}", query(&params));

    // Signed in, no consent yet: the consent page. Session + client (concurrently) + consent.
    let page = portcullis::web::handle(state, get(&authorize, Some(&f.session_id)), NOW + 1).await;
    assert_eq!(page.status(), 200);
    let ops = f.w.counter.by_operation();
    assert_eq!(f.w.counter.total(), 3, "{ops:?}");
    assert_eq!(ops.get("GetItem"), Some(&3), "{ops:?}");

    // Consent: session, client, consent read, consent write, code write.
    f.w.counter.reset();
    let mut form: Vec<(&str, String)> = params.clone();
    form.push(("csrf", csrf_token(&f.session_id)));
    form.push(("decision", "allow".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let consented = portcullis::web::handle(
        state,
        post(
            "https://auth.test/oauth/consent",
            Some(&f.session_id),
            &pairs,
        ),
        NOW + 2,
    )
    .await;
    let code = code_of(&consented);
    let ops = f.w.counter.by_operation();
    assert_eq!(f.w.counter.total(), 5, "{ops:?}");
    assert_eq!(ops.get("PutItem"), Some(&2), "{ops:?}");

    // Consented before: straight to the redirect. Session, client, consent, code write.
    f.w.counter.reset();
    let again = portcullis::web::handle(state, get(&authorize, Some(&f.session_id)), NOW + 3).await;
    let second = code_of(&again);
    assert_eq!(f.w.counter.total(), 4, "{:?}", f.w.counter.by_operation());

    // The exchange: client read, rate-limit transaction, the code's conditional update, the
    // refresh token's put, and (first use only) the client's last-used write.
    f.w.counter.reset();
    let token = portcullis::oauth::handle(state, exchange(&f, &code, &verifier), NOW + 4).await;
    assert_eq!(token.status(), 200, "{:?}", token.body());
    let ops = f.w.counter.by_operation();
    assert_eq!(f.w.counter.total(), 5, "{ops:?}");
    assert_eq!(ops.get("UpdateItem"), Some(&2), "{ops:?}");
    let body = body_json(&token);
    for name in ["access_token", "refresh_token", "id_token"] {
        remember_secret(body[name].as_str().unwrap());
    }
    f.w.counter.reset();
    let token = portcullis::oauth::handle(state, exchange(&f, &second, &verifier), NOW + 5).await;
    assert_eq!(token.status(), 200);
    let body = body_json(&token);
    for name in ["access_token", "refresh_token", "id_token"] {
        remember_secret(body[name].as_str().unwrap());
    }
    assert_eq!(
        f.w.counter.total(),
        4,
        "steady state: {:?}",
        f.w.counter.by_operation()
    );

    // A bad request changes nothing and reads nothing: a malformed verifier.
    f.w.counter.reset();
    let bad = portcullis::oauth::handle(state, exchange(&f, &code, "short"), NOW + 6).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(body_json(&bad)["error"], "invalid_grant");
}

#[tokio::test]
async fn exactly_one_of_concurrent_redemptions_wins() {
    let f = fixture().await;
    let state = &f.w.state;
    let verifier = random_token();
    let params = authorize_params(&f.client_id, &s256(&verifier));
    state
        .web
        .put_consent(
            &f.user_id,
            &f.client_id,
            &["openid".into(), "email".into()],
            NOW,
        )
        .await
        .unwrap();
    let authorize = format!("https://auth.test/oauth/authorize?{}", query(&params));
    let resp = portcullis::web::handle(state, get(&authorize, Some(&f.session_id)), NOW + 1).await;
    let code = code_of(&resp);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let state = state.clone();
        let req = exchange(&f, &code, &verifier);
        tasks.push(tokio::spawn(async move {
            portcullis::oauth::handle(&state, req, NOW + 2).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    for r in &results {
        if r.status() == 200 {
            let b = body_json(r);
            for name in ["access_token", "refresh_token", "id_token"] {
                remember_secret(b[name].as_str().unwrap());
            }
        }
    }
    // An expired code (61 s later) is refused even with the right verifier.
    let resp = portcullis::web::handle(state, get(&authorize, Some(&f.session_id)), NOW + 10).await;
    let late = code_of(&resp);
    let refused =
        portcullis::oauth::handle(state, exchange(&f, &late, &verifier), NOW + 10 + 60).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(body_json(&refused)["error"], "invalid_grant");
}

#[tokio::test]
async fn sessions_end_after_the_idle_and_the_absolute_timeout() {
    let f = fixture().await;
    let state = &f.w.state;
    let idle = state.config.session_idle;
    let absolute = state.config.session_absolute;
    let signin = "https://auth.test/auth/signin";
    let signed_in = |resp: lambda_http::Response<Body>| {
        String::from_utf8_lossy(resp.body().as_ref()).contains("Signed in as")
    };
    assert!(signed_in(
        portcullis::web::handle(state, get(signin, Some(&f.session_id)), NOW + idle - 1).await
    ));
    // That request was seen: the idle clock restarted from it.
    assert!(signed_in(
        portcullis::web::handle(state, get(signin, Some(&f.session_id)), NOW + 2 * idle - 2).await
    ));
    assert!(!signed_in(
        portcullis::web::handle(state, get(signin, Some(&f.session_id)), NOW + 3 * idle).await
    ));
    // Absolute: however active, the session ends.
    let g = fixture().await;
    let mut t = NOW;
    while t + idle / 2 < NOW + absolute {
        t += idle / 2;
        assert!(
            signed_in(
                portcullis::web::handle(&g.w.state, get(signin, Some(&g.session_id)), t).await
            ),
            "{t}"
        );
    }
    assert!(!signed_in(
        portcullis::web::handle(&g.w.state, get(signin, Some(&g.session_id)), NOW + absolute).await
    ));
    // A cookie that is not a session id reads nothing.
    g.w.counter.reset();
    let page = portcullis::web::handle(&g.w.state, get(signin, Some("not-a-session")), NOW).await;
    assert!(!signed_in(page));
    assert_eq!(g.w.counter.total(), 0);
}

fn session_event(kind: &str, id: &str, method: &str, csrf: Option<&str>) -> Value {
    let arn = format!("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/{method}/orders");
    let mut headers = serde_json::Map::new();
    if let Some(c) = csrf {
        headers.insert(CSRF_HEADER.into(), json!(c));
    }
    match kind {
        "http" => {
            let mut ev: Value =
                serde_json::from_str(include_str!("../../events/authorizer-http.json")).unwrap();
            ev["routeArn"] = json!(arn);
            ev["headers"] = Value::Object(headers);
            ev["cookies"] = json!(["theme=dark", format!("{SESSION_COOKIE}={id}")]);
            ev["requestContext"]["http"]["method"] = json!(method);
            ev
        }
        _ => {
            let mut ev: Value =
                serde_json::from_str(include_str!("../../events/authorizer-request.json")).unwrap();
            ev["methodArn"] = json!(arn);
            headers.insert(
                "Cookie".into(),
                json!(format!("theme=dark; {SESSION_COOKIE}={id}")),
            );
            ev["headers"] = Value::Object(headers);
            ev["httpMethod"] = json!(method);
            ev
        }
    }
}

#[tokio::test]
async fn the_authorizer_accepts_a_session_and_wants_csrf_on_unsafe_methods() {
    let f = fixture().await;
    let authorizer = Authorizer::new(f.w.state.clone());
    let csrf = csrf_token(&f.session_id);
    for kind in ["http", "rest"] {
        let allowed = |v: &Value| {
            if kind == "http" {
                v["isAuthorized"] == json!(true)
            } else {
                v["policyDocument"]["Statement"][0]["Effect"] == json!("Allow")
            }
        };
        let get_ok = authorizer
            .handle(&session_event(kind, &f.session_id, "GET", None), NOW + 1)
            .await
            .unwrap();
        assert!(allowed(&get_ok), "{kind}: {get_ok}");
        assert_eq!(get_ok["context"]["authType"], "session");
        assert_eq!(get_ok["context"]["userId"], json!(f.user_id));
        assert_eq!(get_ok["context"]["role"], "admin");
        let post_ok = authorizer
            .handle(
                &session_event(kind, &f.session_id, "POST", Some(&csrf)),
                NOW + 1,
            )
            .await
            .unwrap();
        assert!(allowed(&post_ok), "{kind}: {post_ok}");
        for bad in [
            None,
            Some("wrong"),
            Some(csrf_token(&random_token()).as_str()),
        ] {
            let refused = authorizer
                .handle(&session_event(kind, &f.session_id, "DELETE", bad), NOW + 1)
                .await;
            match kind {
                "http" => assert_eq!(refused.unwrap(), json!({"isAuthorized": false})),
                _ => assert_eq!(refused.unwrap_err(), Failure::UNAUTHORIZED),
            }
        }
        // Unknown or expired sessions are strangers.
        let unknown = authorizer
            .handle(&session_event(kind, &random_token(), "GET", None), NOW + 1)
            .await;
        let late = authorizer
            .handle(
                &session_event(kind, &f.session_id, "GET", None),
                NOW + f.w.state.config.session_absolute,
            )
            .await;
        for r in [unknown, late] {
            match kind {
                "http" => assert_eq!(r.unwrap(), json!({"isAuthorized": false})),
                _ => assert_eq!(r.unwrap_err(), Failure::UNAUTHORIZED),
            }
        }
    }
    // One GetItem per decision (no write: the session was seen less than a minute ago).
    f.w.counter.reset();
    authorizer
        .handle(&session_event("http", &f.session_id, "GET", None), NOW + 2)
        .await
        .unwrap();
    assert_eq!(f.w.counter.total(), 1, "{:?}", f.w.counter.by_operation());
    // Ended sessions stop at once.
    assert_eq!(
        f.w.state.web.end_user_sessions(&f.user_id).await.unwrap(),
        1
    );
    let after = authorizer
        .handle(&session_event("http", &f.session_id, "GET", None), NOW + 3)
        .await
        .unwrap();
    assert_eq!(after, json!({"isAuthorized": false}));
}
