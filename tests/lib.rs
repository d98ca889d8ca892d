//! Test support: the local stack started by `scripts/with-stack.sh`, isolated tables per
//! test, a DynamoDB request counter, and an HTTPS client for `cargo lambda watch`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use portcullis::config::{Config, HashProfile, Tables};
use portcullis::keys::KeyRing;
use portcullis::state::{AppState, AwsClients};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `make test` (scripts/with-stack.sh starts the local stack)")
    })
}

/// The emulator's endpoint (`http://127.0.0.1:PORT`).
pub fn aws_endpoint() -> String {
    env("PORTCULLIS_TEST_AWS_ENDPOINT")
}

/// The base URL of `cargo lambda watch` over plain HTTP.
pub fn watch_url() -> String {
    env("PORTCULLIS_TEST_WATCH_URL")
}

/// The base URL of `cargo lambda watch` over HTTPS (trust `PORTCULLIS_TEST_CA`).
pub fn tls_url() -> String {
    env("PORTCULLIS_TEST_TLS_URL")
}

/// `http://127.0.0.1:PORT/lambda-url/NAME/`.
pub fn function_url(name: &str) -> String {
    format!("{}/lambda-url/{name}/", watch_url())
}

/// `https://127.0.0.1:PORT/lambda-url/NAME/`.
pub fn tls_function_url(name: &str) -> String {
    format!("{}/lambda-url/{name}/", tls_url())
}

/// The variables the functions under `cargo lambda watch` run with.
pub fn watch_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(env("PORTCULLIS_TEST_ENV_FILE")).expect("env file");
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Counts the DynamoDB requests each operation sends (one per attempt on the wire).
#[derive(Debug, Default, Clone)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl RequestCounter {
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "?".into());
        *self.counts.lock().unwrap().entry(name).or_default() += 1;
        Ok(())
    }
}

/// AWS clients for the emulator, the DynamoDB one counting its requests.
pub async fn clients(counter: &RequestCounter) -> AwsClients {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "tests",
        ))
        .load()
        .await;
    let dynamo_conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamo_conf),
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        sdk,
    }
}

/// Note secret material a test uses (a password, a token, an API key), one line per line of
/// `secret`, in the file `PORTCULLIS_TEST_SECRETS_FILE` names (`scripts/with-stack.sh` sets
/// it; unset, this does nothing). After the suite, `scripts/scan-logs.py` fails the run if
/// any of them appears in a log.
pub fn remember_secret(secret: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("PORTCULLIS_TEST_SECRETS_FILE") else {
        return;
    };
    let text: String = secret
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    if text.is_empty() {
        return;
    }
    // One append per call: whole lines, even with many test processes writing at once.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.to_string_lossy()));
    file.write_all(text.as_bytes())
        .expect("write PORTCULLIS_TEST_SECRETS_FILE");
}

/// A configuration over tables with a unique prefix, so tests never see each other's data.
pub fn config(prefix: &str, overrides: &[(&str, &str)]) -> Config {
    let tables = Tables::with_prefix(prefix);
    let mut map: BTreeMap<String, String> = BTreeMap::from([
        ("USERS_TABLE".into(), tables.users.clone()),
        ("REFRESH_TOKENS_TABLE".into(), tables.refresh_tokens.clone()),
        ("API_KEYS_TABLE".into(), tables.api_keys.clone()),
        ("RATE_LIMITS_TABLE".into(), tables.rate_limits.clone()),
        ("REVOKED_TOKENS_TABLE".into(), tables.revoked_tokens.clone()),
        ("OAUTH_CLIENTS_TABLE".into(), tables.oauth_clients.clone()),
        ("WEB_SESSIONS_TABLE".into(), tables.web_sessions.clone()),
        (
            "SIGNING_KEYS_SECRET_ID".into(),
            format!("{prefix}signing-keys"),
        ),
        ("JWT_ISSUER".into(), "https://auth.test".into()),
        ("JWT_AUDIENCE".into(), "portcullis-test".into()),
        ("PASSWORD_HASH_PROFILE".into(), "insecure-test".into()),
    ]);
    for (k, v) in overrides {
        map.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| map.get(k).cloned()).expect("test config")
}

/// A fresh, isolated world: its own tables and signing secret in the emulator, and the
/// app state over them (cheap argon2 unless `PASSWORD_HASH_PROFILE` is overridden).
pub struct World {
    pub state: AppState,
    pub counter: RequestCounter,
}

impl World {
    pub async fn new(overrides: &[(&str, &str)]) -> Self {
        let prefix = format!(
            "t{}-",
            portcullis::ids::new_id("w")
                .replace(['_', '-'], "")
                .to_lowercase()
        );
        let config = config(&prefix, overrides);
        let counter = RequestCounter::default();
        let aws = clients(&counter).await;
        portcullis::admin::init_from_config(&aws, &config, jsonwebtoken::Algorithm::HS256)
            .await
            .expect("init tables");
        let ring: KeyRing = aws
            .load_key_ring(&config.signing_keys_secret_id)
            .await
            .expect("key ring");
        counter.reset();
        Self {
            state: AppState::new(config, aws, ring),
            counter,
        }
    }

    /// Create a user with the state's own policy and return it.
    pub async fn user(&self, email: &str, password: &str, role: &str) -> portcullis::store::User {
        remember_secret(password);
        let user = portcullis::admin::create_user(
            &self.state.users,
            &self.state.hashing,
            &self.state.config.password_rules,
            email,
            role,
            password,
            1_700_000_000,
        )
        .await
        .expect("create user");
        self.counter.reset();
        user
    }

    /// The stored failed-login count of a user (who must exist).
    pub async fn failed_attempts(&self, email: &str) -> u32 {
        self.state
            .users
            .get(email)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no user {email}"))
            .failed_attempts
    }

    /// The stored status of a refresh token (which must have been stored).
    pub async fn refresh_status(&self, token: &str) -> portcullis::store::RefreshStatus {
        self.state
            .refresh_tokens
            .get(&portcullis::ids::digest(token))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no stored item for the refresh token"))
            .status
    }

    pub fn is_fast_hashing(&self) -> bool {
        self.state.config.hash_profile == HashProfile::InsecureTest
    }
}

/// An HTTP(S) client that trusts the local CA of `cargo lambda watch`.
pub fn https_client() -> reqwest::Client {
    let ca = std::fs::read(env("PORTCULLIS_TEST_CA")).expect("CA file");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

/// `portcullis user create` through the CLI (the password on stdin, remembered for the log
/// scan); the new user's id.
pub fn cli_create_user(email: &str, password: &str, role: &str) -> String {
    remember_secret(password);
    let out = cli(
        &["user", "create", "--email", email, "--role", role],
        Some(&format!("{password}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Run the stack's `portcullis` CLI with the watch environment.
pub fn cli(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let bin = env!("CARGO_MANIFEST_DIR").to_owned() + "/../target/debug/portcullis";
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args)
        .envs(watch_env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("spawn portcullis CLI (cargo build --workspace --bins first)");
    if let Some(text) = stdin {
        // What tests pipe to the CLI is a password.
        remember_secret(text);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// A unique email for one test.
pub fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.com",
        portcullis::ids::new_id("e")
            .replace(['_', '-'], "")
            .to_lowercase()
    )
}

/// AWS clients whose endpoint is a closed port: a store that is down.
pub async fn unreachable_aws() -> AwsClients {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "tests",
        ))
        .load()
        .await;
    AwsClients::from_sdk_config(&sdk)
}

impl World {
    /// The same configuration and keys, but the store stopped: every call fails to connect.
    pub async fn stopped(&self) -> AppState {
        AppState::new(
            self.state.config.clone(),
            unreachable_aws().await,
            self.state.tokens.ring(),
        )
    }
}

/// `cargo lambda invoke FUNCTION --data-file FILE` against the plain-HTTP watch (a relative
/// FILE is taken from the repository root), ready to run.
pub fn cargo_lambda_invoke(
    function: &str,
    data_file: impl AsRef<std::path::Path>,
) -> std::process::Command {
    let port = env("PORTCULLIS_TEST_WATCH_PORT");
    let mut cmd = std::process::Command::new("cargo");
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("CARGO_LAMBDA_COLOR", "never")
        .args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .args(["--output-format", "json", "--data-file"])
        .arg(data_file.as_ref());
    cmd
}

/// Invoke and return the function's JSON answer, insisting that the invocation succeeded.
pub fn invoke_json(function: &str, data_file: impl AsRef<std::path::Path>) -> serde_json::Value {
    let out = cargo_lambda_invoke(function, data_file)
        .output()
        .expect("cargo lambda invoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}
