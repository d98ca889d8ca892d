//! Browser sign-in and the authorization code flow over real HTTPS: the `web` function under
//! `cargo lambda watch` (TLS server), the token and userinfo endpoints of the `oauth`
//! function, whoami behind the authorizer (scripts/gateway.py). A small cookie jar plays the
//! browser; redirects are read, never followed, so every hop is asserted. The attacks of
//! issue #13 are here, each with the exact refusal and, where state could change, proof
//! that it did not.

use std::collections::BTreeMap;

use base64::Engine as _;
use portcullis_tests::{cli, function_url, remember_secret, tls_url, unique_email};
use serde_json::{Value, json};

const PASSWORD: &str = "Web-sign1n-pass!";
const REDIRECT: &str = "https://rp.example/cb";

fn web(path: &str) -> String {
    format!("{}/lambda-url/web/{path}", tls_url())
}

fn origin() -> String {
    tls_url()
}

fn oauth(path: &str) -> String {
    format!("{}oauth/{path}", function_url("oauth"))
}

fn create_user(email: &str) {
    portcullis_tests::cli_create_user(email, PASSWORD, "user");
}

/// A registered client: (id, secret for a confidential one).
fn create_client(name: &str, public: bool) -> (String, Option<String>) {
    let mut args = vec![
        "--json",
        "client",
        "create",
        "--name",
        name,
        "--scopes",
        "openid,email,orders:read",
        "--grants",
        "authorization_code,refresh_token",
        "--redirect-uri",
        REDIRECT,
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
    assert_eq!(doc["redirectUris"], json!([REDIRECT]));
    assert_eq!(doc["public"], json!(public));
    let secret = doc["clientSecret"].as_str().map(str::to_owned);
    assert_eq!(secret.is_none(), public, "{doc}");
    if let Some(s) = &secret {
        remember_secret(s);
    }
    (doc["clientId"].as_str().unwrap().to_owned(), secret)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A hidden form field's value in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser: a cookie jar and a client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        let ca = std::fs::read(std::env::var("PORTCULLIS_TEST_CA").unwrap()).unwrap();
        Self {
            http: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Reply {
        let req = if self.jar.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        let reply = Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        };
        for c in reply.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
        reply
    }

    async fn get(&mut self, url: &str) -> Reply {
        let req = self.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)], origin: Option<&str>) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req).await
    }

    /// Sign in through the form; returns the reply to the POST.
    async fn sign_in(&mut self, email: &str, password: &str, return_to: Option<&str>) -> Reply {
        let url = match return_to {
            Some(q) => format!(
                "{}?{}",
                web("auth/signin"),
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", q)
                    .finish()
            ),
            None => web("auth/signin"),
        };
        let page = self.get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = hidden(&page.body, "csrf");
        let rt = hidden(&page.body, "return_to");
        self.post(
            &web("auth/signin"),
            &[
                ("csrf", &csrf),
                ("return_to", &rt),
                ("email", email),
                ("password", password),
            ],
            Some(&origin()),
        )
        .await
    }
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = portcullis::web::random_token();
    Pkce {
        challenge: portcullis::web::s256(&verifier),
        verifier,
    }
}

fn authorize_query(client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email")
        .append_pair("state", "st-123")
        .append_pair("nonce", "n-456")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Sign in and consent; returns the code from the redirect.
async fn get_code(browser: &mut Browser, email: &str, client_id: &str, challenge: &str) -> String {
    let query = authorize_query(client_id, challenge, &[]);
    let first = browser
        .get(&format!("{}?{query}", web("oauth/authorize")))
        .await;
    let page = if first.status == 303 {
        // Not signed in: to the sign-in page, carrying the request.
        let to = first.location();
        assert!(to.starts_with(&web("auth/signin?return_to=")), "{to}");
        let signed = browser.sign_in(email, PASSWORD, Some(&query)).await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        let back = signed.location();
        assert_eq!(back, format!("{}?{query}", web("oauth/authorize")));
        browser.get(&back).await
    } else {
        first
    };
    let consented = if page.status == 200 {
        assert!(
            page.body.contains("wants to access your account"),
            "{}",
            page.body
        );
        let csrf = hidden(&page.body, "csrf");
        let mut form: Vec<(&str, String)> = vec![("csrf", csrf), ("decision", "allow".into())];
        for name in [
            "response_type",
            "client_id",
            "redirect_uri",
            "state",
            "scope",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ] {
            form.push((name, hidden(&page.body, name)));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser
            .post(&web("oauth/consent"), &pairs, Some(&origin()))
            .await
    } else {
        page
    };
    assert_eq!(consented.status, 302, "{}", consented.body);
    let to = consented.location();
    assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&to, "iss"),
        portcullis_tests::watch_env().get("JWT_ISSUER").cloned()
    );
    let code = query_param(&to, "code").unwrap();
    remember_secret(&code);
    code
}

async fn token_request(client: &(String, Option<String>), form: &[(&str, &str)]) -> Reply {
    let mut pairs: Vec<(&str, &str)> = form.to_vec();
    pairs.push(("client_id", &client.0));
    if let Some(secret) = &client.1 {
        pairs.push(("client_secret", secret));
    }
    let mut b = Browser::new();
    b.post(&oauth("token"), &pairs, None).await
}

async fn exchange(client: &(String, Option<String>), code: &str, verifier: &str) -> Reply {
    token_request(
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn userinfo(access_token: &str) -> Reply {
    let mut b = Browser::new();
    let req = b.http.get(oauth("userinfo")).bearer_auth(access_token);
    b.send(req).await
}

fn remember_tokens(body: &Value) {
    for name in ["access_token", "refresh_token", "id_token"] {
        if let Some(t) = body[name].as_str() {
            remember_secret(t);
        }
    }
}

#[tokio::test]
async fn sign_in_consent_code_exchange_userinfo_whoami_and_refresh() {
    let email = unique_email("web-flow");
    create_user(&email);
    let client = create_client("Flow RP", false);
    let p = pkce();
    let mut browser = Browser::new();
    let code = get_code(&mut browser, &email, &client.0, &p.challenge).await;

    // The session cookie as set: __Host- prefix rules, HttpOnly; the CSRF cookie readable.
    let session = browser.jar.get(portcullis::web::SESSION_COOKIE).cloned();
    assert!(session.is_some(), "{:?}", browser.jar);
    remember_secret(session.as_deref().unwrap());

    let reply = exchange(&client, &code, &p.verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    remember_tokens(&body);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid email");
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], json!(client.0));
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["email"], json!(email));
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    assert!(id["at_hash"].as_str().unwrap().len() >= 22);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let at = claims(&access);
    assert_eq!(at["client_id"], json!(client.0));
    assert_eq!(at["sub"], id["sub"]);

    let info = userinfo(&access).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json(), json!({"sub": id["sub"], "email": email}));

    // whoami behind the authorizer: the user acting through the client.
    let gateway = std::env::var("PORTCULLIS_TEST_GATEWAY_URL").unwrap();
    let who = reqwest::Client::new()
        .get(format!("{gateway}/whoami"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let principal = who.json::<Value>().await.unwrap()["data"]["principal"].clone();
    assert_eq!(principal["authType"], "oauth");
    assert_eq!(principal["clientId"], json!(client.0));
    assert_eq!(principal["userId"], id["sub"]);
    assert_eq!(principal["principalId"], id["sub"]);

    // Refresh: rotated; the spent one replayed revokes the family.
    let old_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = token_request(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let next = refreshed.json();
    remember_tokens(&next);
    assert_ne!(next["refresh_token"], body["refresh_token"]);
    assert_eq!(
        claims(next["id_token"].as_str().unwrap())["auth_time"],
        id["auth_time"]
    );
    let replay = token_request(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
        ],
    )
    .await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let newest = token_request(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", next["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(newest.json()["error"], "invalid_grant", "family revoked");

    // A second authorization for the same scopes needs no consent page.
    let p2 = pkce();
    let query = authorize_query(&client.0, &p2.challenge, &[]);
    let again = browser
        .get(&format!("{}?{query}", web("oauth/authorize")))
        .await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert!(query_param(&again.location(), "code").is_some());

    // Withdrawn consent: asked again.
    let out = cli(
        &[
            "consent", "revoke", "--email", &email, "--client", &client.0,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = browser
        .get(&format!("{}?{query}", web("oauth/authorize")))
        .await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("wants to access your account"));
}

#[tokio::test]
async fn public_clients_use_pkce_without_a_secret() {
    let email = unique_email("web-public");
    create_user(&email);
    let public = create_client("Public SPA", true);
    let p = pkce();
    let mut browser = Browser::new();
    let code = get_code(&mut browser, &email, &public.0, &p.challenge).await;
    // A secret from a public client is refused; no secret works.
    let with_secret = token_request(
        &(public.0.clone(), Some("cs_not-a-secret".into())),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(with_secret.status, 401, "{}", with_secret.body);
    let reply = exchange(&public, &code, &p.verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    remember_tokens(&reply.json());
    // client_credentials is not for public clients.
    let cc = token_request(&public, &[("grant_type", "client_credentials")]).await;
    assert_eq!(cc.status, 400);
    assert_eq!(cc.json()["error"], "unauthorized_client");
}

#[tokio::test]
async fn pkce_and_code_binding_attacks_are_refused() {
    let email = unique_email("web-pkce");
    create_user(&email);
    let client = create_client("PKCE RP", false);
    let other = create_client("Other RP", false);
    let p = pkce();
    let mut browser = Browser::new();
    let code = get_code(&mut browser, &email, &client.0, &p.challenge).await;

    let refused = |r: &Reply| {
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.body);
    };
    // Wrong verifier, missing verifier, another client, another redirect URI: refused, and
    // the code is NOT spent by any of them.
    refused(&exchange(&client, &code, &pkce().verifier).await);
    let missing = token_request(
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"], "invalid_request");
    refused(&exchange(&other, &code, &p.verifier).await);
    let other_uri = token_request(
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example/cb/extra"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    refused(&other_uri);
    // The verifier itself as the challenge ("plain") does not pass either.
    refused(&exchange(&client, &code, &p.challenge).await);

    let good = exchange(&client, &code, &p.verifier).await;
    assert_eq!(good.status, 200, "{}", good.body);
    let first = good.json();
    remember_tokens(&first);
    let access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(&access).await.status, 200);

    // Replay: refused, and what the first exchange issued is revoked.
    refused(&exchange(&client, &code, &p.verifier).await);
    let info = userinfo(&access).await;
    assert_eq!(info.status, 401, "{}", info.body);
    assert!(
        info.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let refresh = token_request(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    refused(&refresh);
    // A made-up code.
    refused(&exchange(&client, &portcullis::web::random_token(), &p.verifier).await);
}

#[tokio::test]
async fn bad_authorization_requests_are_shown_or_sent_back_with_the_rfc_error() {
    let client = create_client("Errors RP", false);
    let p = pkce();
    let mut browser = Browser::new();
    let authorize = |q: String| format!("{}?{q}", web("oauth/authorize"));

    // Client and redirect URI errors: an HTML page, never a redirect.
    for uri in [
        "https://rp.example/cb/extra",
        "https://rp.example/cb?x=1",
        "https://rp.example/cb#frag",
        "https://evil.example/cb",
        "https://rp.example/cb/../cb",
        "",
    ] {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.0)
            .append_pair("redirect_uri", uri)
            .append_pair("state", "s")
            .append_pair("code_challenge", &p.challenge)
            .append_pair("code_challenge_method", "S256");
        let r = browser.get(&authorize(q.finish())).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.body);
        assert!(r.headers.get("location").is_none(), "{uri}");
        assert!(r.body.contains("Invalid redirect"), "{uri}");
    }
    let unknown = browser
        .get(&authorize(authorize_query(
            "cl_0000000000000000000000",
            &p.challenge,
            &[],
        )))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.headers.get("location").is_none());
    assert!(unknown.body.contains("Unknown application"));

    // Everything else: back to the registered URI with the RFC error (and the state).
    let cases: Vec<(String, &str, bool)> = vec![
        (
            authorize_query(&client.0, &p.challenge, &[])
                .replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
            true,
        ),
        (
            authorize_query(&client.0, &p.challenge, &[]).replace(
                &format!("code_challenge={}", p.challenge),
                "code_challenge=",
            ),
            "invalid_request",
            true,
        ),
        (
            authorize_query(&client.0, &p.challenge, &[]).replace("state=st-123", "state="),
            "invalid_request",
            false,
        ),
        (
            authorize_query(&client.0, &p.challenge, &[])
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
            true,
        ),
        (
            authorize_query(&client.0, &p.challenge, &[])
                .replace("scope=openid+email", "scope=admin"),
            "invalid_scope",
            true,
        ),
        (
            authorize_query(&client.0, &p.challenge, &[("request", "eyJ.x.y")]),
            "request_not_supported",
            true,
        ),
    ];
    for (query, error, with_state) in cases {
        let r = browser.get(&authorize(query.clone())).await;
        assert_eq!(r.status, 302, "{query}: {}", r.body);
        let to = r.location();
        assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
        assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{query}");
        assert_eq!(query_param(&to, "state").is_some(), with_state, "{to}");
        assert!(query_param(&to, "code").is_none());
    }
    // A repeated parameter is not guessed at.
    let repeated = browser
        .get(&authorize(format!(
            "{}&client_id={}",
            authorize_query(&client.0, &p.challenge, &[]),
            client.0
        )))
        .await;
    assert_eq!(repeated.status, 400);
    // prompt=none without a session: login_required, no sign-in page.
    let none = browser
        .get(&authorize(authorize_query(
            &client.0,
            &p.challenge,
            &[("prompt", "none")],
        )))
        .await;
    assert_eq!(none.status, 302);
    assert_eq!(
        query_param(&none.location(), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_our_origin() {
    let email = unique_email("web-csrf");
    create_user(&email);
    let mut browser = Browser::new();
    let page = browser.get(&web("auth/signin")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let signin_cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(portcullis::web::SIGNIN_COOKIE))
        .unwrap();
    for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(signin_cookie.contains(part), "{signin_cookie}");
    }
    let csrf = hidden(&page.body, "csrf");
    let creds = [("email", email.as_str()), ("password", PASSWORD)];
    // No token, a wrong token, a foreign or missing Origin: 403 and no session.
    for (form, origin) in [
        (vec![], Some(origin())),
        (vec![("csrf", "x".repeat(43))], Some(origin())),
        (
            vec![("csrf", csrf.clone())],
            Some("https://evil.example".to_owned()),
        ),
        (vec![("csrf", csrf.clone())], None),
    ] {
        let mut pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend(creds);
        let r = browser
            .post(&web("auth/signin"), &pairs, origin.as_deref())
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(!browser.jar.contains_key(portcullis::web::SESSION_COOKIE));
    }
    // Wrong password: the page says so, 401, no session.
    let mut pairs = vec![
        ("csrf", csrf.as_str()),
        ("email", email.as_str()),
        ("password", "Wrong-pass1!"),
    ];
    let wrong = browser
        .post(&web("auth/signin"), &pairs, Some(&origin()))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("role=\"alert\""));
    assert!(!browser.jar.contains_key(portcullis::web::SESSION_COOKIE));
    // The right one, with the fresh token of the re-rendered page.
    let csrf2 = hidden(&wrong.body, "csrf");
    pairs = vec![
        ("csrf", csrf2.as_str()),
        ("email", email.as_str()),
        ("password", PASSWORD),
    ];
    let ok = browser
        .post(&web("auth/signin"), &pairs, Some(&origin()))
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location(), web("auth/signin"));
    let cookies = ok.set_cookies();
    let session = cookies
        .iter()
        .find(|c| c.starts_with(portcullis::web::SESSION_COOKIE))
        .unwrap();
    for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Domain"));
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with(portcullis::web::CSRF_COOKIE))
        .unwrap();
    assert!(!csrf_cookie.contains("HttpOnly"));
    let session_id = browser.jar[portcullis::web::SESSION_COOKIE].clone();
    remember_secret(&session_id);

    // Signed in: the page offers sign-out; a sign-out without the token is refused.
    let home = browser.get(&web("auth/signin")).await;
    assert!(home.body.contains("Signed in as"), "{}", home.body);
    let no_token = browser
        .post(&web("auth/signout"), &[("csrf", "nope")], Some(&origin()))
        .await;
    assert_eq!(no_token.status, 403);
    assert!(
        browser
            .get(&web("auth/signin"))
            .await
            .body
            .contains("Signed in as")
    );

    // The session works as a credential behind the authorizer (GET needs no CSRF header).
    let gateway = std::env::var("PORTCULLIS_TEST_GATEWAY_URL").unwrap();
    let cookie = format!("{}={session_id}", portcullis::web::SESSION_COOKIE);
    let who = reqwest::Client::new()
        .get(format!("{gateway}/whoami"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let principal = who.json::<Value>().await.unwrap()["data"]["principal"].clone();
    assert_eq!(principal["authType"], "session");
    assert_eq!(principal["email"], json!(email));

    // Sign out with the page's token; the old cookie replayed is a stranger again.
    let home = browser.get(&web("auth/signin")).await;
    let token = hidden(&home.body, "csrf");
    let out = browser
        .post(&web("auth/signout"), &[("csrf", &token)], Some(&origin()))
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(!browser.jar.contains_key(portcullis::web::SESSION_COOKIE));
    let mut replay = Browser::new();
    replay
        .jar
        .insert(portcullis::web::SESSION_COOKIE.into(), session_id.clone());
    let page = replay.get(&web("auth/signin")).await;
    assert!(!page.body.contains("Signed in as"));
    assert!(page.body.contains("name=\"password\""));
    let who = reqwest::Client::new()
        .get(format!("{gateway}/whoami"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 403);
}

#[tokio::test]
async fn return_to_cannot_redirect_anywhere_else() {
    let email = unique_email("web-open");
    create_user(&email);
    for evil in ["//evil.example/x", "https://evil.example", "x\"onload=1"] {
        let mut browser = Browser::new();
        let r = browser.sign_in(&email, PASSWORD, Some(evil)).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let to = r.location();
        assert!(
            to.starts_with(&format!("{}?", web("oauth/authorize"))) || to == web("auth/signin"),
            "{evil}: {to}"
        );
    }
}

#[tokio::test]
async fn logout_everywhere_ends_browser_sessions() {
    let email = unique_email("web-logout-all");
    create_user(&email);
    let mut browser = Browser::new();
    let r = browser.sign_in(&email, PASSWORD, None).await;
    assert_eq!(r.status, 303);
    remember_secret(&browser.jar[portcullis::web::SESSION_COOKIE]);
    assert!(
        browser
            .get(&web("auth/signin"))
            .await
            .body
            .contains("Signed in as")
    );
    // First-party login, then logout with allSessions.
    let http = reqwest::Client::new();
    let login: Value = http
        .post(function_url("login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["data"]["tokens"]["accessToken"].as_str().unwrap();
    remember_secret(access);
    remember_secret(login["data"]["tokens"]["refreshToken"].as_str().unwrap());
    let out = http
        .post(function_url("logout"))
        .bearer_auth(access)
        .json(&json!({"allSessions": true}))
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success(), "{}", out.text().await.unwrap());
    assert!(
        !browser
            .get(&web("auth/signin"))
            .await
            .body
            .contains("Signed in as")
    );
    // Disabling the account ends its browser sessions too.
    let mut again = Browser::new();
    assert_eq!(again.sign_in(&email, PASSWORD, None).await.status, 303);
    remember_secret(&again.jar[portcullis::web::SESSION_COOKIE]);
    assert!(
        again
            .get(&web("auth/signin"))
            .await
            .body
            .contains("Signed in as")
    );
    let out = cli(&["user", "disable", "--email", &email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !again
            .get(&web("auth/signin"))
            .await
            .body
            .contains("Signed in as")
    );
}
