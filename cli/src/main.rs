//! `portcullis`: the admin command line. It talks to the same tables through the same
//! library, honouring the same environment as the functions.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::admin;
use portcullis::apikeys::rfc3339;
use portcullis::config::Config;
use portcullis::password::HashingPolicy;
use portcullis::state::{AwsClients, now};
use portcullis::store::{
    ApiKeyStore, ClientStore, RevokedStore, UserStore, WebStore, api_keys, clients,
};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis admin: tables, users, API keys, OAuth clients, signing keys"
)]
struct Cli {
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the tables (TTL on, GSIs) and the signing-key secret where missing.
    Init {
        /// Algorithm of the first signing key when the secret is created.
        #[arg(long, default_value = "EdDSA", value_parser = ["EdDSA", "ES256", "HS256"])]
        alg: String,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage OAuth 2.0 clients (client credentials, authorization code, refresh token).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage the consents users gave to OAuth clients on the consent page.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Manage the signing keys in the secret.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Put a new key first (it signs from now on); previous keys keep verifying.
    Rotate {
        #[arg(long, default_value = "EdDSA", value_parser = ["EdDSA", "ES256", "HS256"])]
        alg: String,
    },
    /// Remove a key that no longer signs (tokens it signed stop verifying).
    Retire { kid: String },
    /// One key per line: kid, algorithm, and which one signs.
    List,
}

fn algorithm(name: &str) -> jsonwebtoken::Algorithm {
    match name {
        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        _ => jsonwebtoken::Algorithm::HS256,
    }
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input (first line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// Clear a lockout.
    Unlock {
        #[arg(long)]
        email: String,
    },
    /// Stop a user logging in or refreshing; their access tokens are revoked too.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Mark a user's email address verified (an operator vouches for it).
    Verify {
        #[arg(long)]
        email: String,
    },
    /// Print a one-time password-reset link (valid 30 minutes; no mail is sent) for an
    /// operator to hand over. A newer link voids this one.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// Manage a user's second factor.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
}

#[derive(Subcommand)]
enum MfaCommand {
    /// Remove a user's TOTP second factor and recovery codes (a lost device): they log in
    /// with the password alone until they enrol again. Writes an audit event to stderr.
    Reset {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key; prints its id and the key (the key only this once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. orders:read,orders:write
        #[arg(long, default_value = "")]
        scopes: String,
        /// Lifetime such as 30s, 15m, 12h, 90d (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// One key per line, starting with its id; never the key.
    List,
    /// Revoke a key at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// Withdraw a user's consent for a client: the next authorization asks again.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        client: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and secret (the secret only this once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes the client may ask for, e.g. orders:read,orders:write
        #[arg(long, default_value = "")]
        scopes: String,
        /// Comma-separated grant types.
        #[arg(long, default_value = "client_credentials")]
        grants: String,
        /// Lifetime of its access tokens, such as 15m or 1h (default: ACCESS_TOKEN_TTL_SECONDS).
        #[arg(long)]
        token_ttl: Option<String>,
        /// Where authorization responses may be sent (repeat for several): https, or http on
        /// a loopback address; matched exactly. Required for authorization_code.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (browser or native app): no secret; authorization_code (with
        /// PKCE) and refresh_token only.
        #[arg(long)]
        public: bool,
    },
    /// One client per line, starting with its id; never a secret.
    List,
    /// Issue a new secret (printed once); the old one keeps working for --overlap.
    RotateSecret {
        id: String,
        /// How long the old secret keeps working, such as 1h (default: not at all).
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Disable a client: its secret stops working at once, its tokens within the
    /// authorizer's revocation window.
    Disable { id: String },
}

/// `30s`, `15m`, `12h`, `90d` -> seconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}: use e.g. 30s, 15m, 12h, 90d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "bad duration {text:?}: use e.g. 30s, 15m, 12h, 90d"
            ));
        }
    };
    if n <= 0 || n > 36_500 * 86_400 / factor {
        return Err(format!(
            "bad duration {text:?}: must be positive and under 100 years"
        ));
    }
    Ok(n * factor)
}

fn parse_scopes(text: &str) -> Result<Vec<String>, String> {
    let scopes: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.len() > 128 || !s.chars().all(|c| c.is_ascii_graphic() && c != ','))
    {
        return Err(format!("bad scope {bad:?}"));
    }
    Ok(scopes)
}

/// Scopes of an OAuth client: as for keys, and RFC 6749 §3.3 scope tokens (no `"` or `\`).
fn parse_client_scopes(text: &str) -> Result<Vec<String>, String> {
    let scopes = parse_scopes(text)?;
    match scopes.iter().find(|s| s.contains(['"', '\\'])) {
        Some(bad) => Err(format!("bad scope {bad:?}")),
        None => Ok(scopes),
    }
}

fn client_json(record: &clients::ClientRecord) -> Value {
    json!({
        "clientId": record.id,
        "name": record.name,
        "scopes": record.scopes,
        "grants": record.grants,
        "redirectUris": record.redirect_uris,
        "public": record.public,
        "tokenTtl": record.token_ttl,
        "disabled": record.disabled,
        "createdAt": rfc3339(record.created_at),
        "lastUsedAt": record.last_used_at.map(rfc3339),
    })
}

fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (input is echoed; pipe it in to avoid that):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}

fn error_text(err: &portcullis::Error) -> String {
    match err {
        portcullis::Error::Unavailable(d) | portcullis::Error::Internal(d) => {
            format!("{}: {d}", err.code())
        }
        other => format!("{}: {}", other.code(), other.public_message()),
    }
}

fn key_json(record: &api_keys::ApiKeyRecord) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "scopes": record.scopes,
        "expiresAt": record.expires_at.map(rfc3339),
        "revoked": record.revoked,
        "lastUsedAt": record.last_used_at.map(rfc3339),
    })
}

/// What to print: the JSON document, and the text lines for humans.
struct Output {
    json: Value,
    text: String,
}

async fn run(command: Command) -> Result<Output, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let aws = AwsClients::load().await;
    let users = || UserStore::new(aws.dynamodb.clone(), &config.tables.users);
    let keys = || ApiKeyStore::new(aws.dynamodb.clone(), &config.tables.api_keys);
    let oauth_clients = || ClientStore::new(aws.dynamodb.clone(), &config.tables.oauth_clients);
    let normalise =
        |email: &str| portcullis::login::normalise_email(email).map_err(|e| error_text(&e));
    match command {
        Command::Init { alg } => {
            let alg = if alg == "EdDSA" {
                jsonwebtoken::Algorithm::EdDSA
            } else {
                jsonwebtoken::Algorithm::HS256
            };
            let report = admin::init_from_config(&aws, &config, alg)
                .await
                .map_err(|e| e.to_string())?;
            let text = format!(
                "tables created: {}; already there: {}; signing secret created: {}",
                report.created_tables.len(),
                report.existing_tables.len(),
                report.created_secret
            );
            Ok(Output {
                json: json!({
                    "createdTables": report.created_tables,
                    "existingTables": report.existing_tables,
                    "createdSecret": report.created_secret,
                }),
                text,
            })
        }
        Command::User { command } => match command {
            UserCommand::Create { email, role } => {
                let password = read_password()?;
                let rules = &config.password_rules;
                let hashing = HashingPolicy::for_profile(config.hash_profile);
                let user =
                    admin::create_user(&users(), &hashing, rules, &email, &role, &password, now())
                        .await
                        .map_err(|e| error_text(&e))?;
                Ok(Output {
                    text: user.id.clone(),
                    json: json!({"id": user.id, "email": user.email, "role": user.role}),
                })
            }
            UserCommand::Unlock { email } => {
                let email = normalise(&email)?;
                if !users().unlock(&email).await.map_err(|e| e.to_string())? {
                    return Err(format!("no user {email}"));
                }
                Ok(Output {
                    text: format!("unlocked {email}"),
                    json: json!({"email": email, "unlocked": true}),
                })
            }
            UserCommand::Verify { email } => {
                let email = normalise(&email)?;
                if !users()
                    .set_verified(&email)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("no user {email}"));
                }
                Ok(Output {
                    text: format!("verified {email}"),
                    json: json!({"email": email, "verified": true}),
                })
            }
            UserCommand::ResetPassword { email } => {
                let link = portcullis::account::operator_reset_link(
                    &users(),
                    &config.password_reset_url,
                    &email,
                    now(),
                )
                .await
                .map_err(|e| error_text(&e))?
                .ok_or_else(|| format!("no user {}", email.trim()))?;
                eprintln!(
                    "{}",
                    json!({"audit": "operator_reset_link", "email": email.trim().to_lowercase(), "at": rfc3339(now())})
                );
                Ok(Output {
                    text: link.clone(),
                    json: json!({"email": email.trim().to_lowercase(), "resetLink": link, "expiresIn": portcullis::account::RESET_TTL}),
                })
            }
            UserCommand::Mfa {
                command: MfaCommand::Reset { email },
            } => {
                let email = normalise(&email)?;
                let store = users();
                let user = store
                    .get(&email)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user {email}"))?;
                let had = user.mfa.is_active() || user.mfa.totp_pending.is_some();
                store.reset_mfa(&email).await.map_err(|e| e.to_string())?;
                // The audit trail of an operator action: one JSON line on stderr (stdout is
                // the command's answer).
                eprintln!(
                    "{}",
                    json!({"audit": "mfa_reset", "userId": user.id, "email": email, "hadMfa": had, "at": rfc3339(now())})
                );
                Ok(Output {
                    text: format!("second factor of {email} removed"),
                    json: json!({"email": email, "id": user.id, "mfaReset": true, "hadMfa": had}),
                })
            }
            UserCommand::Disable { email } => {
                let email = normalise(&email)?;
                let store = users();
                let user = store
                    .get(&email)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user {email}"))?;
                store
                    .set_disabled(&email, true)
                    .await
                    .map_err(|e| e.to_string())?;
                // Refresh is refused by the disabled flag; access tokens already out are cut
                // off through the revocation list the authorizer reads.
                let revoked =
                    RevokedStore::new(aws.dynamodb.clone(), &config.tables.revoked_tokens);
                revoked
                    .revoke_user(&user.id, now(), config.access_token_ttl + config.jwt_leeway)
                    .await
                    .map_err(|e| e.to_string())?;
                // Browser sessions end at once (the authorizer reads them per request).
                WebStore::new(aws.dynamodb.clone(), &config.tables.web_sessions)
                    .end_user_sessions(&user.id)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Output {
                    text: format!("disabled {email}"),
                    json: json!({"email": email, "id": user.id, "disabled": true}),
                })
            }
        },
        Command::Consent { command } => match command {
            ConsentCommand::Revoke { email, client } => {
                let email = normalise(&email)?;
                let user = users()
                    .get(&email)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user {email}"))?;
                let removed = WebStore::new(aws.dynamodb.clone(), &config.tables.web_sessions)
                    .delete_consent(&user.id, &client)
                    .await
                    .map_err(|e| e.to_string())?;
                if !removed {
                    return Err(format!("{email} has no consent for {client}"));
                }
                Ok(Output {
                    text: format!("consent of {email} for {client} withdrawn"),
                    json: json!({"email": email, "clientId": client, "revoked": true}),
                })
            }
        },
        Command::SigningKey { command } => {
            let secret_id = &config.signing_keys_secret_id;
            match command {
                SigningKeyCommand::Rotate { alg } => {
                    let kid = admin::rotate_signing_key(&aws, secret_id, algorithm(&alg))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(Output {
                        text: kid.clone(),
                        json: json!({"kid": kid, "alg": alg}),
                    })
                }
                SigningKeyCommand::Retire { kid } => {
                    admin::retire_signing_key(&aws, secret_id, &kid)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(Output {
                        text: format!("retired {kid}"),
                        json: json!({"kid": kid, "retired": true}),
                    })
                }
                SigningKeyCommand::List => {
                    let ring = aws
                        .load_key_ring(secret_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    let rows: Vec<Value> = ring
                        .keys()
                        .iter()
                        .enumerate()
                        .map(|(i, k)| json!({"kid": k.kid, "alg": format!("{:?}", k.alg), "signing": i == 0}))
                        .collect();
                    let text = rows
                        .iter()
                        .map(|r| {
                            format!(
                                "{}\t{}\t{}",
                                r["kid"].as_str().unwrap_or(""),
                                r["alg"].as_str().unwrap_or(""),
                                if r["signing"] == true {
                                    "signing"
                                } else {
                                    "verify-only"
                                }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    Ok(Output {
                        json: Value::Array(rows),
                        text,
                    })
                }
            }
        }
        Command::Client { command } => match command {
            ClientCommand::Create {
                name,
                scopes,
                grants,
                token_ttl,
                redirect_uris,
                public,
            } => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.len() > 128 {
                    return Err("--name must be 1 to 128 characters".into());
                }
                let scopes = parse_client_scopes(&scopes)?;
                let grants = parse_scopes(&grants)?;
                if grants.is_empty() {
                    return Err("--grants needs at least one grant type".into());
                }
                if let Some(bad) = grants
                    .iter()
                    .find(|g| !clients::SUPPORTED_GRANTS.contains(&g.as_str()))
                {
                    return Err(format!(
                        "unsupported grant {bad:?}; supported: {}",
                        clients::SUPPORTED_GRANTS.join(", ")
                    ));
                }
                let ttl = match token_ttl.as_deref().map(parse_duration).transpose()? {
                    None => config.access_token_ttl,
                    Some(t) if t <= 86_400 => t,
                    Some(_) => return Err("--token-ttl must be at most 1d".into()),
                };
                if redirect_uris.len() > clients::MAX_REDIRECT_URIS {
                    return Err(format!(
                        "at most {} --redirect-uri",
                        clients::MAX_REDIRECT_URIS
                    ));
                }
                for uri in &redirect_uris {
                    clients::check_redirect_uri(uri)
                        .map_err(|why| format!("bad --redirect-uri {uri:?}: {why}"))?;
                }
                let has = |g: &str| grants.iter().any(|x| x == g);
                if has(clients::GRANT_AUTHORIZATION_CODE) && redirect_uris.is_empty() {
                    return Err("authorization_code needs at least one --redirect-uri".into());
                }
                if public && has(clients::GRANT_CLIENT_CREDENTIALS) {
                    return Err("a --public client cannot use client_credentials".into());
                }
                let new = clients::generate_with(
                    &name,
                    grants,
                    scopes,
                    ttl,
                    redirect_uris,
                    public,
                    now(),
                );
                oauth_clients()
                    .create(&new.record)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut doc = client_json(&new.record);
                let mut text = new.record.id.clone();
                if let Some(secret) = &new.secret {
                    doc["clientSecret"] = json!(secret);
                    text = format!("{text}\n{secret}");
                }
                Ok(Output { text, json: doc })
            }
            ClientCommand::List => {
                let list = oauth_clients().list().await.map_err(|e| e.to_string())?;
                let text = list
                    .iter()
                    .map(|c| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}",
                            c.id,
                            c.name,
                            if c.scopes.is_empty() {
                                "-".to_owned()
                            } else {
                                c.scopes.join(",")
                            },
                            c.grants.join(","),
                            if c.disabled { "disabled" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(Output {
                    json: Value::Array(list.iter().map(client_json).collect()),
                    text,
                })
            }
            ClientCommand::RotateSecret { id, overlap } => {
                let overlap = overlap.as_deref().map(parse_duration).transpose()?;
                if oauth_clients()
                    .get(&id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some_and(|c| c.public)
                {
                    return Err(format!("{id} is a public client: it has no secret"));
                }
                let secret = oauth_clients()
                    .rotate_secret(&id, overlap.unwrap_or(0), now())
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no client {id}"))?;
                Ok(Output {
                    text: format!("{id}\n{secret}"),
                    json: json!({"clientId": id, "clientSecret": secret, "overlapSeconds": overlap.unwrap_or(0)}),
                })
            }
            ClientCommand::Disable { id } => {
                let revoked =
                    RevokedStore::new(aws.dynamodb.clone(), &config.tables.revoked_tokens);
                if !portcullis::oauth::disable_client(
                    &oauth_clients(),
                    &revoked,
                    &id,
                    config.jwt_leeway,
                    now(),
                )
                .await
                .map_err(|e| e.to_string())?
                {
                    return Err(format!("no client {id}"));
                }
                Ok(Output {
                    text: format!("disabled {id}"),
                    json: json!({"clientId": id, "disabled": true}),
                })
            }
        },
        Command::Key { command } => match command {
            KeyCommand::Create {
                name,
                scopes,
                expires_in,
            } => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.len() > 128 {
                    return Err("--name must be 1 to 128 characters".into());
                }
                let scopes = parse_scopes(&scopes)?;
                let at = now();
                let expires_at = expires_in
                    .as_deref()
                    .map(parse_duration)
                    .transpose()?
                    .map(|d| at + d);
                let new = api_keys::generate(&name, scopes, at, expires_at);
                keys().put(&new.record).await.map_err(|e| e.to_string())?;
                let mut doc = key_json(&new.record);
                doc["key"] = json!(new.key);
                Ok(Output {
                    text: format!("{}\n{}", new.record.id, new.key),
                    json: doc,
                })
            }
            KeyCommand::List => {
                let list = keys().list().await.map_err(|e| e.to_string())?;
                let text = list
                    .iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}",
                            k.id,
                            k.name,
                            if k.scopes.is_empty() {
                                "-".to_owned()
                            } else {
                                k.scopes.join(",")
                            },
                            k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                            if k.revoked { "revoked" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(Output {
                    json: Value::Array(list.iter().map(key_json).collect()),
                    text,
                })
            }
            KeyCommand::Revoke { id } => {
                if !keys().revoke(&id, now()).await.map_err(|e| e.to_string())? {
                    return Err(format!("no key {id}"));
                }
                Ok(Output {
                    text: format!("revoked {id}"),
                    json: json!({"id": id, "revoked": true}),
                })
            }
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.json;
    match run(cli.command).await {
        Ok(out) => {
            if json_out {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portcullis: {}", message.lines().next().unwrap_or("failed"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("90d"), Ok(7_776_000));
        for bad in ["", "d", "10", "10w", "-5d", "0s", "1.5h", "99999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_scopes_are_rfc_scope_tokens() {
        assert_eq!(parse_client_scopes("a:b,c").unwrap(), vec!["a:b", "c"]);
        assert!(parse_client_scopes("a\"b").is_err());
        assert!(parse_client_scopes("a\\b").is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scopes("a, b:write ,,").unwrap(), vec!["a", "b:write"]);
        assert!(parse_scopes("").unwrap().is_empty());
        assert!(parse_scopes("bad scope").is_err());
    }
}
