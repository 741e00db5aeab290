//! `px`'s cloud commands over the REST API: `px auth login|logout|status|password`, `px api-key …`,
//! `px deploy-key …`, `px script list|show`, `px get viziers`, `px get vizier NAME`, `px delete vizier NAME` and
//! `px cron …` (in `cron`), `px export …` (in `export`), `px retention …` (in `retention`), and the REST half of `px debug` (in `debug`).
//!
//! Owns the command-line shape of these verbs (kept close to Pixie's `px`), reading secrets without echoing
//! them, choosing the stored credential for the current cloud, and telling the user what to do next (log in,
//! change the password). The HTTP details live in `client`, the layout of answers in `render`, the credential
//! file in `config`. Must not link server crates (`loupe-cloud`, `loupe-auth`): it knows the API only by its
//! JSON, and must never print a password, nor a key except the one just created.

mod client;
mod cron;
pub mod debug;
mod export;
mod render;
mod retention;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use self::client::{ApiError, Auth, Client};
use self::render::{Column, text, time};
use crate::config::{AuthStore, Credential, normalize_addr};
use crate::output::Format;
use crate::tls::Trust;

/// The cloud commands, flattened into `px`'s top-level commands.
#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Log in to the Loupe cloud, log out, change your password, or show who you are.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Manage your API keys (for scripts and CI: `px auth login --api-key`); an org admin sees the org's.
    #[command(subcommand)]
    ApiKey(KeyCommand),
    /// Manage the org's deploy keys, which register a vizier with the cloud (creating and deleting needs an
    /// org admin).
    #[command(subcommand)]
    DeployKey(KeyCommand),
    /// List the scripts the cloud offers (bundled `px/…` and your org's `org/…`) or print one.
    #[command(subcommand, visible_alias = "scripts")]
    Script(ScriptCommand),
    /// Show the org's viziers (the clusters registered with this cloud): `px get viziers`, `px get vizier NAME`.
    #[command(subcommand)]
    Get(GetCommand),
    /// Forget a vizier (org admins): `px delete vizier NAME`. A vizier still running registers again.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Manage the org's cron scripts (scripts its viziers run on a schedule) and read their results.
    #[command(subcommand)]
    Cron(cron::CronCommand),
    /// Show or set the org's default OpenTelemetry endpoint, used by `px.export` when a script names none.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Show or set how long, and how much of, each table the org's viziers keep in history.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
}

/// `px get …`.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List the viziers: name, id, status (healthy, unhealthy, disconnected), last heartbeat, version, agents,
    /// address.
    Viziers {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show one vizier, by name (or id).
    Vizier {
        /// The vizier's name (see `px get viziers`) or id.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// `px delete …`.
#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Forget a vizier, by name (or id).
    Vizier {
        /// The vizier's name (see `px get viziers`) or id.
        name: String,
    },
}

/// `px auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in with an email and password, or with an API key, and store the credential for this cloud.
    ///
    /// The password comes from --password, else $PX_PASSWORD, else a line on stdin (prompted, without echo,
    /// on a terminal). The credential is stored in $PX_CONFIG_DIR, $XDG_CONFIG_HOME/loupe or ~/.config/loupe
    /// (auth.json, mode 0600) and used only for the cloud address it was obtained from.
    Login(LoginArgs),
    /// End this session on the server and delete the stored credential.
    Logout,
    /// Show who you are logged in as on this cloud: user, org and role.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Change your password; required after the first login of the bootstrap admin.
    ///
    /// Missing passwords are read from stdin: the current one on the first line, the new one on the next
    /// (prompted, without echo and with confirmation, on a terminal). Stores the new session token.
    Password(PasswordArgs),
}

/// `px auth login` flags.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your email (password login).
    #[arg(short, long, required_unless_present = "api_key")]
    email: Option<String>,
    /// Your password; prefer $PX_PASSWORD or stdin, since flags show up in the process list.
    #[arg(long, env = "PX_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Log in with this API key (px-api-…) instead of a password; `-` reads it from stdin.
    #[arg(long, conflicts_with = "email")]
    api_key: Option<String>,
}

/// `px auth password` flags.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The current password (else read from stdin).
    #[arg(long)]
    current: Option<String>,
    /// The new password (else read from stdin): at least the server's minimum length, not a common password,
    /// not your email.
    #[arg(long)]
    new: Option<String>,
}

/// `px api-key …` and `px deploy-key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key. It is printed this once: store it, it cannot be shown again.
    Create {
        /// What the key is for.
        #[arg(short, long, default_value = "")]
        description: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List the keys (never their secret), revoked ones included.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show one key (never its secret).
    Get {
        /// The key's id (see `list`).
        id: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Revoke a key: it stops working at once (it stays listed, with its revocation time).
    Delete {
        /// The key's id (see `list`).
        id: String,
    },
}

/// `px script …`.
#[derive(Debug, Subcommand)]
pub enum ScriptCommand {
    /// List the bundled (`px/…`) and org (`org/…`) scripts.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print a script's PxL (or, with -o json|csv, the whole script record).
    Show {
        /// Script name, e.g. px/http_data.
        name: String,
        /// Output format; by default the PxL source itself is printed.
        #[arg(short, long, value_enum)]
        output: Option<Format>,
    },
}

/// What a session answer (login, password change) carries that `px` uses.
#[derive(Debug, Deserialize)]
struct Session {
    token: String,
    expires_at: i64,
    user: UserRef,
    org: OrgRef,
    #[serde(default)]
    must_change_password: bool,
    /// Password change only: the caller's API keys the change revoked.
    #[serde(default)]
    revoked_api_keys: Vec<RevokedKey>,
}

/// An API key a password change revoked: enough to recognise it, never its material.
#[derive(Debug, Deserialize)]
struct RevokedKey {
    prefix: String,
    #[serde(default)]
    description: String,
}

/// The answer to `GET /api/v1/auth/me`.
#[derive(Debug, Deserialize)]
struct Me {
    user: UserRef,
    org: OrgRef,
    #[serde(default)]
    must_change_password: bool,
}

#[derive(Debug, Deserialize)]
struct UserRef {
    email: String,
    #[serde(default)]
    role: String,
}

#[derive(Debug, Deserialize)]
struct OrgRef {
    name: String,
}

/// Which kind of key a `KeyCommand` manages.
struct KeyKind {
    path: &'static str,
    noun: &'static str,
}

const API_KEYS: KeyKind = KeyKind { path: "/api/v1/api-keys", noun: "API key" };
const DEPLOY_KEYS: KeyKind = KeyKind { path: "/api/v1/deploy-keys", noun: "deploy key" };

const KEY_COLUMNS: &[Column] = &[
    text("id", "id"),
    text("prefix", "prefix"),
    text("description", "description"),
    time("created_at", "created"),
    time("last_used_at", "last used"),
    time("revoked_at", "revoked"),
];

/// The cloud a command talks to: its address (`host:port` or a URL) and how its certificate is trusted.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// As given by `--cloud-addr` / `PX_CLOUD_ADDR`.
    pub addr: String,
    /// For `https://` addresses.
    pub trust: Trust,
}

/// Runs a cloud command against `cloud`. A refusal by the server prints `error: <its message>` (and a
/// hint when there is an obvious next step) and exits 1; usage and connection errors are returned (exit 2).
///
/// Blocking: `px` runs one command at a time, so the async runtime has nothing else to do meanwhile.
pub fn run(cloud: &Cloud, command: CloudCommand) -> Result<ExitCode> {
    let store = AuthStore::from_env()?;
    let mut out = std::io::stdout().lock();
    let result = match command {
        CloudCommand::Auth(AuthCommand::Login(args)) => login(&store, cloud, args, &mut out),
        CloudCommand::Auth(AuthCommand::Logout) => logout(&store, cloud, &mut out),
        CloudCommand::Auth(AuthCommand::Status { output }) => status(&store, cloud, output, &mut out),
        CloudCommand::Auth(AuthCommand::Password(args)) => change_password(&store, cloud, args, &mut out),
        CloudCommand::ApiKey(cmd) => keys(&store, cloud, &API_KEYS, cmd, &mut out),
        CloudCommand::DeployKey(cmd) => keys(&store, cloud, &DEPLOY_KEYS, cmd, &mut out),
        CloudCommand::Script(cmd) => scripts(&store, cloud, cmd, &mut out),
        CloudCommand::Get(cmd) => get(&store, cloud, cmd, &mut out),
        CloudCommand::Delete(DeleteCommand::Vizier { name }) => delete_vizier(&store, cloud, &name, &mut out),
        CloudCommand::Cron(cmd) => cron::run(&store, cloud, cmd, &mut out),
        CloudCommand::Export(cmd) => export::run(&store, cloud, cmd, &mut out),
        CloudCommand::Retention(cmd) => retention::run(&store, cloud, cmd, &mut out),
    };
    match result {
        Ok(code) => Ok(code),
        Err(err) => match err.downcast_ref::<ApiError>() {
            Some(api) => {
                let mut stderr = std::io::stderr().lock();
                writeln!(stderr, "error: {}", api.message)?;
                if let Some(hint) = &api.hint {
                    writeln!(stderr, "hint: {hint}")?;
                }
                Ok(ExitCode::from(1))
            }
            None => Err(err),
        },
    }
}

/// A client carrying the stored credential for this cloud; an error telling the user to log in if there is
/// none, it belongs to another cloud, or it has expired.
fn logged_in(store: &AuthStore, cloud: &Cloud) -> Result<(Client, Credential)> {
    let addr = normalize_addr(&cloud.addr);
    let Some(cred) = store.load_for(&addr)? else {
        match store.load()? {
            Some(other) => bail!(
                "not logged in to {addr} (the stored credential is for {}); run `px auth login`",
                other.cloud_addr
            ),
            None => bail!("not logged in to {addr}; run `px auth login`"),
        }
    };
    if cred.is_expired(loupe_common::time::now_unix_secs()) {
        bail!("the session on {addr} has expired; run `px auth login`");
    }
    let auth = match (&cred.token, &cred.api_key) {
        (Some(token), _) => Auth::Token(token.clone()),
        (None, Some(key)) => Auth::ApiKey(key.clone()),
        (None, None) => bail!("the stored credential for {addr} is empty; run `px auth login`"),
    };
    Ok((Client::new(&addr, &cloud.trust).with_auth(auth), cred))
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).with_context(|| format!("the cloud's answer to {what} has an unexpected shape"))
}

/// An error without the "run `px auth login`" hint (a failed login needs no advice to log in).
fn without_hint(err: anyhow::Error) -> anyhow::Error {
    match err.downcast::<ApiError>() {
        Ok(api) => ApiError { hint: None, ..api }.into(),
        Err(err) => err,
    }
}

fn login(store: &AuthStore, cloud: &Cloud, args: LoginArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let client = Client::new(&cloud.addr, &cloud.trust);
    let addr = client.base().to_owned();
    if let Some(key) = args.api_key {
        let key = if key == "-" { read_secret("API key: ")? } else { key };
        let key = key.trim().to_owned();
        if key.is_empty() {
            bail!("the API key is empty");
        }
        let client = client.with_auth(Auth::ApiKey(key.clone()));
        let me: Me = parse(client.get("/api/v1/auth/me").map_err(without_hint)?, "/api/v1/auth/me")?;
        store.save(&Credential {
            cloud_addr: addr.clone(),
            token: None,
            api_key: Some(key),
            expires_at: None,
            email: me.user.email.clone(),
            org: me.org.name.clone(),
        })?;
        writeln!(
            out,
            "Logged in to {addr} as {} (org {}, role {}) with an API key.",
            me.user.email, me.org.name, me.user.role
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(email) = args.email else { bail!("pass --email (with a password) or --api-key") };
    let password = match args.password {
        Some(p) => p,
        None => read_secret("Password: ")?,
    };
    if password.is_empty() {
        bail!("no password given: pass --password, set PX_PASSWORD or write it on stdin");
    }
    let body = json!({ "email": email, "password": password });
    let session: Session =
        parse(client.post("/api/v1/auth/login", Some(&body)).map_err(without_hint)?, "/api/v1/auth/login")?;
    save_session(store, &addr, &session)?;
    writeln!(
        out,
        "Logged in to {addr} as {} (org {}, role {}).",
        session.user.email, session.org.name, session.user.role
    )?;
    if session.must_change_password {
        eprintln!("Your password must be changed before anything else can be done on this cloud.");
        if std::io::stdin().is_terminal() && confirm("Change it now? [Y/n] ")? {
            let args = PasswordArgs { current: Some(password), new: None };
            return change_password(store, cloud, args, out);
        }
        eprintln!("Run `px auth password` to change it (it asks for the current and the new password).");
    }
    Ok(ExitCode::SUCCESS)
}

fn save_session(store: &AuthStore, addr: &str, session: &Session) -> Result<()> {
    store.save(&Credential {
        cloud_addr: addr.to_owned(),
        token: Some(session.token.clone()),
        api_key: None,
        expires_at: Some(session.expires_at),
        email: session.user.email.clone(),
        org: session.org.name.clone(),
    })
}

fn logout(store: &AuthStore, cloud: &Cloud, out: &mut dyn Write) -> Result<ExitCode> {
    let addr = normalize_addr(&cloud.addr);
    let Some(cred) = store.load_for(&addr)? else {
        writeln!(out, "Not logged in to {addr}.")?;
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(token) = &cred.token {
        let client = Client::new(&addr, &cloud.trust).with_auth(Auth::Token(token.clone()));
        match client.post("/api/v1/auth/logout", None) {
            Ok(_) => {}
            // An expired or already revoked session has ended anyway.
            Err(err) if err.downcast_ref::<ApiError>().is_some_and(|e| e.status == 401) => {}
            Err(err) => {
                store.remove()?;
                writeln!(out, "Deleted the stored credential for {addr}.")?;
                eprintln!("error: the server did not end the session, which stays valid until it expires: {err:#}");
                let refused = err.downcast_ref::<ApiError>().is_some();
                return Ok(ExitCode::from(if refused { 1 } else { 2 }));
            }
        }
        store.remove()?;
        writeln!(out, "Logged out of {addr}.")?;
    } else {
        store.remove()?;
        writeln!(out, "Deleted the stored API key for {addr}; the key itself stays valid until `px api-key delete`.")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status(store: &AuthStore, cloud: &Cloud, format: Format, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, cred) = logged_in(store, cloud)?;
    let mut me = client.get("/api/v1/auth/me")?;
    let parsed: Me = parse(me.clone(), "/api/v1/auth/me")?;
    if let Some(obj) = me.as_object_mut() {
        obj.insert("cloud_addr".into(), Value::String(client.base().to_owned()));
        let credential = if cred.token.is_some() { "session token" } else { "API key" };
        obj.insert("credential".into(), Value::String(credential.into()));
        obj.insert("expires_at".into(), cred.expires_at.map_or(Value::Null, Value::from));
    }
    let cols = [
        text("cloud_addr", "cloud"),
        text("user.email", "email"),
        text("user.display_name", "name"),
        text("org.name", "org"),
        text("user.role", "role"),
        text("credential", "credential"),
        time("expires_at", "expires"),
        text("must_change_password", "must change password"),
    ];
    render::record(&me, &cols, format, out)?;
    if parsed.must_change_password && format == Format::Table {
        writeln!(std::io::stderr().lock(), "Your password must be changed first: run `px auth password`.")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn change_password(store: &AuthStore, cloud: &Cloud, args: PasswordArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, cred) = logged_in(store, cloud)?;
    if cred.token.is_none() {
        bail!("changing the password needs a password login: run `px auth login --email {}` first", cred.email);
    }
    let current = match args.current {
        Some(p) => p,
        None => read_secret("Current password: ")?,
    };
    let new = match args.new {
        Some(p) => p,
        None => {
            let new = read_secret("New password: ")?;
            if std::io::stdin().is_terminal() && read_secret("Repeat the new password: ")? != new {
                bail!("the two new passwords differ; nothing was changed");
            }
            new
        }
    };
    if current.is_empty() || new.is_empty() {
        bail!("both the current and the new password are needed (--current/--new or two lines on stdin)");
    }
    let body = json!({ "current_password": current, "new_password": new });
    let session: Session = parse(client.post("/api/v1/auth/password", Some(&body))?, "/api/v1/auth/password")?;
    save_session(store, client.base(), &session)?;
    writeln!(out, "Password changed; logged in to {} as {}.", client.base(), session.user.email)?;
    // A changed password ends every credential made with the old one: say which keys stopped working.
    match session.revoked_api_keys.len() {
        0 => writeln!(out, "You had no active API keys; none were revoked.")?,
        n => {
            let plural = if n == 1 { "" } else { "s" };
            writeln!(out, "Revoked your {n} API key{plural} (made with the old password):")?;
            for key in &session.revoked_api_keys {
                writeln!(out, "  {}… {}", key.prefix, key.description)?;
            }
            writeln!(out, "Create new ones with `px api-key create`.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keys(store: &AuthStore, cloud: &Cloud, kind: &KeyKind, cmd: KeyCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        KeyCommand::Create { description, output } => {
            let created = client.post(kind.path, Some(&json!({ "description": description })))?;
            if created.get("key").and_then(Value::as_str).is_none() {
                bail!("the cloud created a {} but did not return it", kind.noun);
            }
            let cols = [
                text("id", "id"),
                text("key", "key"),
                text("description", "description"),
                time("created_at", "created"),
            ];
            render::record(&created, &cols, output, out)?;
            out.flush()?;
            writeln!(
                std::io::stderr().lock(),
                "Store this {} now: it is shown only this once and cannot be shown again.",
                kind.noun
            )?;
        }
        KeyCommand::List { output } => {
            let list = client.get(kind.path)?;
            let Some(rows) = list.as_array() else { bail!("the cloud's list of {}s is not a list", kind.noun) };
            render::list(rows, KEY_COLUMNS, output, out)?;
        }
        KeyCommand::Get { id, output } => {
            let key = client.get(&format!("{}/{}", kind.path, client::segment(&id)))?;
            render::record(&key, KEY_COLUMNS, output, out)?;
        }
        KeyCommand::Delete { id } => {
            client.delete(&format!("{}/{}", kind.path, client::segment(&id)))?;
            writeln!(out, "Revoked {} {id}.", kind.noun)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

const VIZIERS: &str = "/api/v1/viziers";

/// What `px get viziers` shows: the agents and the address are as the vizier last reported them.
const VIZIER_COLUMNS: &[Column] = &[
    text("name", "name"),
    text("id", "id"),
    text("status", "status"),
    time("last_heartbeat_at", "last heartbeat"),
    text("version", "version"),
    text("num_agents", "agents"),
    text("address", "address"),
];

fn list_viziers(client: &Client) -> Result<Vec<Value>> {
    match client.get(VIZIERS)? {
        Value::Array(rows) => Ok(rows),
        _ => bail!("the cloud's list of viziers is not a list"),
    }
}

/// The vizier named (or with the id) `name`, as listed; an [`ApiError`] when there is none.
fn find_vizier(client: &Client, name: &str) -> Result<Value> {
    let rows = list_viziers(client)?;
    let found = rows.iter().find(|v| v["name"] == name).or_else(|| rows.iter().find(|v| v["id"] == name));
    match found {
        Some(v) => Ok(v.clone()),
        None => Err(ApiError {
            status: 404,
            message: format!("no vizier named {name:?}"),
            hint: Some("see `px get viziers`".into()),
        }
        .into()),
    }
}

fn get(store: &AuthStore, cloud: &Cloud, cmd: GetCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        GetCommand::Viziers { output } => render::list(&list_viziers(&client)?, VIZIER_COLUMNS, output, out)?,
        GetCommand::Vizier { name, output } => {
            let listed = find_vizier(&client, &name)?;
            let id = listed["id"].as_str().context("the cloud listed a vizier without an id")?;
            let vizier = client.get(&format!("{VIZIERS}/{}", client::segment(id)))?;
            let mut cols = VIZIER_COLUMNS.to_vec();
            cols.extend([text("cluster_uid", "cluster uid"), time("created_at", "registered")]);
            render::record(&vizier, &cols, output, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn delete_vizier(store: &AuthStore, cloud: &Cloud, name: &str, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    let vizier = find_vizier(&client, name)?;
    let id = vizier["id"].as_str().context("the cloud listed a vizier without an id")?;
    client.delete(&format!("{VIZIERS}/{}", client::segment(id)))?;
    writeln!(out, "Deleted vizier {} ({id}).", vizier["name"].as_str().unwrap_or(name))?;
    Ok(ExitCode::SUCCESS)
}

fn scripts(store: &AuthStore, cloud: &Cloud, cmd: ScriptCommand, out: &mut dyn Write) -> Result<ExitCode> {
    let (client, _) = logged_in(store, cloud)?;
    match cmd {
        ScriptCommand::List { output } => {
            let list = client.get("/api/v1/scripts")?;
            let Some(rows) = list.as_array() else { bail!("the cloud's list of scripts is not a list") };
            let cols = [text("name", "name"), text("source", "source"), text("description", "description")];
            render::list(rows, &cols, output, out)?;
        }
        ScriptCommand::Show { name, output } => {
            let script = client.get(&format!("/api/v1/scripts/{}", client::path(&name)))?;
            match output {
                None | Some(Format::Table) => {
                    let Some(pxl) = script.get("pxl").and_then(Value::as_str) else {
                        bail!("the cloud's answer for {name} has no PxL")
                    };
                    write!(out, "{pxl}")?;
                    if !pxl.ends_with('\n') {
                        writeln!(out)?;
                    }
                }
                Some(format) => {
                    let cols = [
                        text("name", "name"),
                        text("source", "source"),
                        text("description", "description"),
                        text("pxl", "pxl"),
                    ];
                    render::record(&script, &cols, format, out)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks a yes/no question on the terminal; yes unless the answer starts with `n`.
fn confirm(question: &str) -> Result<bool> {
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("failed to read from the terminal")?;
    Ok(!line.trim_start().to_ascii_lowercase().starts_with('n'))
}

/// Reads one secret line from stdin: prompted on stderr and not echoed when stdin is a terminal, taken as is
/// (without its line ending) when it is a pipe.
fn read_secret(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut line = String::new();
    if tty {
        eprint!("{prompt}");
        let _quiet = EchoOff::new();
        let read = stdin.lock().read_line(&mut line);
        eprintln!();
        read.context("failed to read from the terminal")?;
    } else {
        stdin.lock().read_line(&mut line).context("failed to read stdin")?;
    }
    let trimmed = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if trimmed.is_empty() {
        bail!("no {} given on stdin", prompt.trim_end_matches([':', ' ']).to_lowercase());
    }
    Ok(trimmed.to_owned())
}

/// Turns terminal echo off on stdin until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: termios is plain data; zeroed is a valid value for tcgetattr to overwrite.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is stdin and `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Self(None);
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: `quiet` is a valid termios derived from the current settings.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) } != 0 {
            return Self(None);
        }
        Self(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
        }
    }
}
