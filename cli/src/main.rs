//! `portcullis`: the admin command line. It talks to the same tables through the same
//! library, honouring the same environment as the functions.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::admin;
use portcullis::config::Config;
use portcullis::password::{HashingPolicy, PasswordRules};
use portcullis::state::{AwsClients, now};
use portcullis::store::UserStore;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis admin: tables, users, API keys, signing keys"
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
        #[arg(long, default_value = "HS256", value_parser = ["HS256", "EdDSA"])]
        alg: String,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
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
    /// Stop a user logging in or refreshing.
    Disable {
        #[arg(long)]
        email: String,
    },
}

type CliResult = Result<serde_json::Value, String>;

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

async fn run(cli: Cli) -> CliResult {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let aws = AwsClients::load().await;
    match cli.command {
        Command::Init { alg } => {
            let alg = if alg == "EdDSA" {
                jsonwebtoken::Algorithm::EdDSA
            } else {
                jsonwebtoken::Algorithm::HS256
            };
            let report = admin::init_from_config(&aws, &config, alg)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "createdTables": report.created_tables,
                "existingTables": report.existing_tables,
                "createdSecret": report.created_secret,
            }))
        }
        Command::User { command } => {
            let users = UserStore::new(aws.dynamodb.clone(), &config.tables.users);
            match command {
                UserCommand::Create { email, role } => {
                    let password = read_password()?;
                    let rules =
                        PasswordRules::parse(&config.password_policy).map_err(|e| e.to_string())?;
                    let hashing = HashingPolicy::for_profile(config.hash_profile);
                    let user = admin::create_user(
                        &users,
                        &hashing,
                        &rules,
                        &email,
                        &role,
                        &password,
                        now(),
                    )
                    .await
                    .map_err(|e| error_text(&e))?;
                    Ok(json!({"id": user.id, "email": user.email, "role": user.role}))
                }
                UserCommand::Unlock { email } => {
                    let email =
                        portcullis::login::normalise_email(&email).map_err(|e| error_text(&e))?;
                    if !users.unlock(&email).await.map_err(|e| e.to_string())? {
                        return Err(format!("no user {email}"));
                    }
                    Ok(json!({"email": email, "unlocked": true}))
                }
                UserCommand::Disable { email } => {
                    let email =
                        portcullis::login::normalise_email(&email).map_err(|e| error_text(&e))?;
                    if !users
                        .set_disabled(&email, true)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Err(format!("no user {email}"));
                    }
                    Ok(json!({"email": email, "disabled": true}))
                }
            }
        }
    }
}

fn print_text(value: &serde_json::Value) {
    if let Some(id) = value.get("id").and_then(|v| v.as_str()) {
        println!("{id}");
    } else if let Some(created) = value.get("createdTables") {
        println!(
            "tables created: {created}; already there: {}; secret created: {}",
            value["existingTables"], value["createdSecret"]
        );
    } else {
        println!("{value}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.json;
    match run(cli).await {
        Ok(value) => {
            if json_out {
                println!("{value}");
            } else {
                print_text(&value);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portcullis: {}", message.lines().next().unwrap_or("failed"));
            ExitCode::FAILURE
        }
    }
}
