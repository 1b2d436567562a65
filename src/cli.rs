//! The `hub` command line: serve (the default), migrate, manage users, mint
//! tokens. Errors come back as `anyhow` and are printed once by `main`.

use std::io::Read;

use clap::{ArgAction, Parser, Subcommand};

use crate::auth::jwt::{TokenCodec, TokenKind};
use crate::auth::password;
use crate::bus::{self, Topic};
use crate::config::Settings;
use crate::db::users::{self, Flag};
use crate::db::{self, Db};
use crate::startup::Application;
use crate::ws::session::USER_CHANGED;

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "The realtime hub: WebSocket chat, analytics and DNS pushes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hub (the default).
    Serve {
        /// Refuse to start without a configured signing key (as HUB_ENV=production).
        #[arg(long)]
        production: bool,
        /// Share the port with other hub processes on this machine
        /// (SO_REUSEPORT; as HUB_REUSE_PORT=true): the kernel spreads new
        /// connections over them.
        #[arg(long)]
        reuse_port: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage users in auth_user.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print an access token for a user.
    Token { username: String },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an active user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        staff: bool,
        /// Read the password from standard input; without it the user has no
        /// usable password and can only get tokens from `hub token`.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Activate or deactivate a user (true|false).
    SetActive {
        username: String,
        #[arg(action = ArgAction::Set)]
        active: bool,
    },
    /// Grant or revoke staff (true|false).
    SetStaff {
        username: String,
        #[arg(action = ArgAction::Set)]
        staff: bool,
    },
}

/// Logs go to standard error: human-readable, or one JSON object a line with
/// `HUB_LOG_FORMAT=json`; `RUST_LOG` filters them (default `info`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Fails only when a subscriber is already set (the process set one up
    // before); that one keeps logging.
    let _ = if std::env::var("HUB_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve {
        production: false,
        reuse_port: false,
    });
    let production = matches!(
        command,
        Command::Serve {
            production: true,
            ..
        }
    );
    let mut settings = Settings::from_env(production)?;
    if let Command::Serve {
        reuse_port: true, ..
    } = command
    {
        settings.cluster.reuse_port = true;
    }
    match command {
        Command::Serve { .. } => actix_web::rt::System::new().block_on(async move {
            let app = Application::build(settings)?;
            app.run_until_signalled().await?;
            Ok(())
        }),
        Command::Migrate => {
            let applied = Db::new(db::pool(
                &settings.database_url,
                1,
                db::DEFAULT_POOL_TIMEOUT,
            )?)
            .migrate()?;
            println!("applied {} migration(s)", applied.len());
            Ok(())
        }
        Command::User { action } => user(&settings, action),
        Command::Token { username } => {
            if settings.jwt.key_generated {
                anyhow::bail!(
                    "set JWT_SIGNING_KEY (or SECRET_KEY): a token signed with a random key is useless"
                );
            }
            let db = open(&settings)?;
            let user = db
                .run_here(|conn| users::find_by_username(conn, &username))?
                .ok_or_else(|| anyhow::anyhow!("no user named '{username}'"))?;
            println!(
                "{}",
                TokenCodec::new(&settings.jwt).mint(user.id, TokenKind::Access)
            );
            Ok(())
        }
    }
}

fn open(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::new(db::pool(
        &settings.database_url,
        1,
        db::DEFAULT_POOL_TIMEOUT,
    )?);
    db.migrate()?;
    Ok(db)
}

fn user(settings: &Settings, action: UserAction) -> anyhow::Result<()> {
    let db = open(settings)?;
    let (username, flag, on) = match action {
        UserAction::Create {
            username,
            staff,
            password_stdin,
        } => {
            // The name first: a bad one must not cost a password hash.
            anyhow::ensure!(
                (1..=150).contains(&username.chars().count()),
                "a username is 1 to 150 characters"
            );
            crate::text::check(&username).map_err(|e| anyhow::anyhow!("the username: {e}"))?;
            let hash = if password_stdin {
                let mut pw = String::new();
                std::io::stdin().take(4097).read_to_string(&mut pw)?;
                let pw = pw.trim_end_matches(['\r', '\n']);
                anyhow::ensure!(
                    !pw.is_empty() && pw.len() <= 4096,
                    "the password must be 1 to 4096 bytes"
                );
                password::make(pw, settings.password_iterations)
            } else {
                password::unusable()
            };
            let id = db.run_here(|conn| users::create(conn, &username, &hash, staff))?;
            println!("created user '{username}' (id {id})");
            return Ok(());
        }
        UserAction::SetActive { username, active } => (username, Flag::Active, active),
        UserAction::SetStaff { username, staff } => (username, Flag::Staff, staff),
    };
    if !db.run_here(|conn| users::set_flag(conn, &username, flag, on))? {
        anyhow::bail!("no user named '{username}'");
    }
    println!("user '{username}': {flag:?} = {on}");
    // In a cluster every node's sockets of this user load it again now,
    // rather than at their next re-check.
    if let Some(url) = &settings.cluster.redis_url {
        let found = db.run_here(|conn| users::find_by_username(conn, &username))?;
        if let Some(user) = found {
            // The change is made either way; without Redis the sockets
            // follow at their next re-check.
            match bus::redis::publish_once(url, &Topic::user(user.id), USER_CHANGED) {
                Ok(()) => println!("told every node's sockets of '{username}'"),
                Err(err) => eprintln!(
                    "could not tell the nodes ({err}): open sockets of '{username}' follow at their next re-check"
                ),
            }
        }
    }
    Ok(())
}
