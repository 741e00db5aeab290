//! `px`: Loupe's command-line client. Runs PxL scripts and prints their tables.
//!
//! Speaks only the public API in `loupe-proto`; must never link server internals nor the PxL
//! compiler: bundled script texts come from `loupe-scripts`, and compile errors arrive as structured
//! `CompilerError`s that `loupe-proto` draws with a caret under the script we sent.
//! The cloud commands (`px auth`, `px api-key`, `px deploy-key`, `px script`) live in `cloud` and speak
//! the cloud's REST API by its JSON alone. Over `https://`, both REST and gRPC trust what `tls` sets up.

mod cloud;
mod config;
mod output;
mod tls;
mod vis;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::{ExecuteScriptRequest, HealthCheckRequest, execute_script_response};

use crate::output::{Format, ResultTable};
use crate::tls::Trust;

/// Loupe's command-line client.
#[derive(Parser)]
#[command(name = "px", version, about = "Run PxL scripts against Loupe and print the results")]
struct Cli {
    /// Address of the Loupe endpoint (host:port or URL). Without a scheme, https:// is used, except for a
    /// loopback host (localhost, 127.0.0.0/8, [::1]), which gets http://.
    #[arg(long, global = true, env = "PX_CLOUD_ADDR", default_value = "127.0.0.1:51200")]
    cloud_addr: String,
    /// File holding a node agent's query token, to query `loupe vizier pem`'s own port directly (e.g. its
    /// <data-dir>/secrets/vizier-query-token). The token itself may be given in PX_VIZIER_TOKEN instead.
    #[arg(long, global = true, env = "PX_VIZIER_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// CA certificate (PEM) to trust for an https:// address, e.g. `loupe up`'s <data-dir>/secrets/ca.crt;
    /// the system's roots otherwise.
    #[arg(long, global = true, env = "PX_CA_CERT", value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a PxL script: a bundled one by name (`px/http_data`) or a file with -f.
    ///
    /// Against the cloud (`loupe up`'s API port), log in first with `px auth login`: the script runs on one of
    /// your org's viziers (-c NAME, which may be left out when the org has one). Against a node agent's own
    /// query port (`loupe vizier pem --listen`), give its query token instead: PX_VIZIER_TOKEN=<token>, or
    /// --token-file <data-dir>/secrets/vizier-query-token.
    Run {
        /// Bundled script name, e.g. px/http_data (see `px run --list`).
        script: Option<String>,
        /// Run the script in this file instead.
        #[arg(short, long, conflicts_with = "script")]
        file: Option<std::path::PathBuf>,
        /// The vizier to run on, by name or id (`px get viziers`); optional when your org has only one.
        #[arg(short = 'c', long = "cluster", value_name = "VIZIER")]
        cluster: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
        /// List the bundled scripts and exit.
        #[arg(long)]
        list: bool,
        /// Evaluate `px.now()` as this Unix time in nanoseconds (for reproducible runs).
        #[arg(long, hide = true)]
        now_ns: Option<i64>,
        /// A vis spec (Pixie's vis.json) for a function-form script: each global function and each widget's
        /// function is called, its variables taken from the script arguments after `--` or their defaults.
        /// A bundled script uses its own vis spec unless this is given.
        #[arg(long, value_name = "VIS_JSON")]
        vis: Option<std::path::PathBuf>,
        /// Script arguments for the vis spec's variables, after `--`: `-- --start_time=-10m --svc=ns/cart`.
        #[arg(last = true, value_name = "ARGS")]
        script_args: Vec<String>,
    },
    /// Run one read-only SQL statement over the same tables, through the same API, credentials and row cap
    /// as `px run` (DataFusion's SQL dialect): `px sql "SELECT req_path, count(*) FROM http_events GROUP BY 1"`.
    /// Quote table names with a dot ("stack_traces.beta"); PxL's functions are `px_<name>(...)`.
    Sql {
        /// The SQL statement.
        query: String,
        /// The vizier to run on, by name or id; optional when your org has only one.
        #[arg(short = 'c', long = "cluster", value_name = "VIZIER")]
        cluster: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print the client's and the server's versions.
    Version,
    /// Check this client's way to the cloud and its viziers, in order: the address, DNS, the API and its
    /// certificate, the stored credential, the session, the org's viziers, then a small script's round trip to
    /// each healthy vizier and the server's version. Prints the one thing to fix for each failure; exits 1 when
    /// a check fails. (The cloud side is checked by `loupe doctor`.)
    Debug {
        /// Output format (json for scripts).
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    #[command(flatten)]
    Cloud(cloud::CloudCommand),
}

/// Exit codes: 0 success, 1 the script failed (compile or run), 2 usage or connection errors.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let trust = match Trust::load(cli.ca_cert.as_deref()) {
        Ok(trust) => trust,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cli, &trust).await {
        Ok(code) => code,
        Err(e) => {
            // A refused certificate gets one line saying what to do, not the TLS stack's error chain.
            match trust.explain(&e) {
                Some(line) => eprintln!("error: {line}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}

async fn connect(addr: &str, trust: &Trust) -> Result<VizierServiceClient<tonic::transport::Channel>> {
    let url = config::normalize_addr(addr);
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid address {addr:?}"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    if url.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://")) {
        endpoint = endpoint.tls_config(trust.tonic_config()).context("invalid TLS settings")?;
    }
    let channel = endpoint.connect().await.with_context(|| {
        format!("failed to connect to Loupe at {url} (is `loupe up` running? set PX_CLOUD_ADDR or --cloud-addr)")
    })?;
    Ok(VizierServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

/// The metadata key of a node agent's query token (`loupe_vizier::TOKEN_METADATA`; px does not link vizier).
const VIZIER_TOKEN_METADATA: &str = loupe_proto::headers::VIZIER_TOKEN;

/// The node agent's query token: PX_VIZIER_TOKEN, else the file named by --token-file.
fn vizier_token(token_file: Option<&std::path::Path>) -> Result<Option<String>> {
    if let Some(token) = std::env::var("PX_VIZIER_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_owned()));
    }
    let Some(path) = token_file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the query token file {} (--token-file)", path.display()))?;
    Ok(Some(text.trim().to_owned()))
}

/// A query request carrying the node agent's query token, if given, and the credential stored for `cloud_addr`
/// (by `px auth login`), if any: the cloud's port requires a user's credential, a node agent's own port the
/// token.
fn with_credential<T>(cloud_addr: &str, token: Option<&str>, message: T) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value = token.parse().context("the query token is not valid text")?;
        request.metadata_mut().insert(VIZIER_TOKEN_METADATA, value);
    }
    let Some(cred) = config::AuthStore::from_env()?.load_for(&config::normalize_addr(cloud_addr))? else {
        return Ok(request);
    };
    let metadata = request.metadata_mut();
    if let Some(token) = &cred.token {
        let value = format!("Bearer {token}").parse().context("the stored session token is not valid text")?;
        metadata.insert(loupe_proto::headers::AUTHORIZATION, value);
    } else if let Some(key) = &cred.api_key {
        metadata.insert(loupe_proto::headers::API_KEY, key.parse().context("the stored API key is not valid text")?);
    }
    Ok(request)
}

/// What to say when the query API refuses the call.
fn refused(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        // A node agent's refusal already says which token it wants.
        tonic::Code::Unauthenticated if status.message().contains("query token") => {
            anyhow::anyhow!("{}", status.message())
        }
        tonic::Code::Unauthenticated => {
            anyhow::anyhow!("{} (log in with `px auth login`)", status.message())
        }
        // The cloud's answers about the vizier (unknown, ambiguous, not connected, too slow) say it all.
        tonic::Code::PermissionDenied
        | tonic::Code::NotFound
        | tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded => anyhow::anyhow!("{}", status.message()),
        _ => anyhow::Error::new(status).context("script request failed"),
    }
}

async fn run(cli: Cli, trust: &Trust) -> Result<ExitCode> {
    let token = || vizier_token(cli.token_file.as_deref());
    match cli.command {
        Command::Cloud(command) => cloud::run(&cloud::Cloud { addr: cli.cloud_addr, trust: trust.clone() }, command),
        Command::Debug { output } => debug(&cli.cloud_addr, trust, output).await,
        Command::Version => {
            println!("px client version {}", env!("CARGO_PKG_VERSION"));
            match connect(&cli.cloud_addr, trust).await {
                Ok(mut c) => match c
                    .health_check(with_credential(&cli.cloud_addr, token()?.as_deref(), HealthCheckRequest {})?)
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        println!("server version {} at {}", r.version, cli.cloud_addr);
                        if let Some(s) = r.status.filter(|s| s.code != 0) {
                            println!("server not ready: {}", s.message);
                        }
                    }
                    Err(s) => println!("server at {} did not answer: {}", cli.cloud_addr, s.message()),
                },
                Err(e) => match trust.explain(&e) {
                    Some(line) => println!("server: unreachable ({line})"),
                    None => println!("server: unreachable ({e:#})"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { script, file, cluster, output, list, now_ns, vis, script_args } => {
            if list {
                for s in loupe_scripts::scripts() {
                    println!("{:<28} {}", s.name, s.short);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (origin, source, bundled_vis) = match (script, file) {
                (_, Some(path)) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("failed to read script {}", path.display()))?;
                    (path.display().to_string(), text, None)
                }
                (Some(name), None) => match loupe_scripts::get(&name) {
                    Some(s) => (name, s.pxl.to_string(), s.vis),
                    None => bail!("no bundled script named {name:?}; `px run --list` shows them"),
                },
                (None, None) => bail!("name a bundled script (e.g. px/http_data) or pass -f FILE"),
            };
            let vis_text = match (&vis, bundled_vis) {
                (Some(path), _) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("failed to read vis spec {}", path.display()))?,
                ),
                (None, Some(text)) => Some(text.to_string()),
                (None, None) => None,
            };
            let exec_funcs = match vis_text {
                Some(text) => {
                    let args = vis::parse_script_args(&script_args)?;
                    let what = vis.as_ref().map_or_else(|| format!("{origin}'s vis spec"), |p| p.display().to_string());
                    vis::exec_funcs(&text, &args).with_context(|| what)?
                }
                None if !script_args.is_empty() => bail!("script arguments need a vis spec: pass --vis vis.json"),
                None => Vec::new(),
            };
            let req = ExecuteScriptRequest {
                query_str: source,
                query_name: origin,
                now_ns: now_ns.unwrap_or(0),
                exec_funcs,
                ..Default::default()
            };
            execute(&cli.cloud_addr, trust, token()?.as_deref(), req, cluster.as_deref(), output).await
        }
        Command::Sql { query, cluster, output } => {
            let req = ExecuteScriptRequest {
                query_str: query,
                query_name: "sql".into(),
                language: loupe_proto::vizierpb::QueryLanguage::Sql as i32,
                ..Default::default()
            };
            execute(&cli.cloud_addr, trust, token()?.as_deref(), req, cluster.as_deref(), output).await
        }
    }
}

/// The script `px debug` sends to each vizier: small, and it touches every agent.
const DEBUG_SCRIPT: &str = "import px\npx.display(px.GetAgentStatus(), 'agents')\n";

/// `px debug`: the REST checks, then a script's round trip to each healthy vizier, then the versions.
async fn debug(cloud_addr: &str, trust: &Trust, output: Format) -> Result<ExitCode> {
    use cloud::debug::Check;
    let store = config::AuthStore::from_env()?;
    let cloud = cloud::Cloud { addr: cloud_addr.to_owned(), trust: trust.clone() };
    let found = cloud::debug::checks(&store, &cloud);
    let mut checks = found.checks;
    let session_ok = checks.iter().any(|c| c.name == "session" && c.status == cloud::debug::Status::Ok);
    for vizier in found.healthy_viziers.iter().take(10) {
        let name = format!("query {vizier}");
        let started = std::time::Instant::now();
        let check = match probe(cloud_addr, trust, vizier).await {
            Ok(agents) => {
                Check::ok(&name, format!("a script ran in {} ms ({agents} agent(s))", started.elapsed().as_millis()))
            }
            Err(e) => Check::fail(
                &name,
                trust.explain(&e).unwrap_or_else(|| format!("{e:#}")),
                "the cloud reached no answer from this vizier: read its connector's log, and run `loupe doctor` on                  the cloud side",
            ),
        };
        checks.push(check);
    }
    if session_ok {
        let version = async {
            let mut client = connect(cloud_addr, trust).await?;
            let answer = client
                .health_check(with_credential(cloud_addr, None, HealthCheckRequest {})?)
                .await
                .map_err(refused)?;
            Ok::<_, anyhow::Error>(answer.into_inner().version)
        };
        checks.push(match version.await {
            Ok(server) if server == env!("CARGO_PKG_VERSION") => {
                Check::ok("version", format!("px and the cloud are {server}"))
            }
            Ok(server) => Check::warn(
                "version",
                format!("px is {} and the cloud {server}", env!("CARGO_PKG_VERSION")),
                "use the px of the cloud's release",
            ),
            Err(e) => Check::fail("version", format!("{e:#}"), "check that gRPC reaches the cloud (loupe doctor)"),
        });
    }
    let healthy = cloud::debug::print(&checks, output, &mut std::io::stdout().lock())?;
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Runs [`DEBUG_SCRIPT`] on `vizier` through the cloud; the number of agents it listed.
async fn probe(cloud_addr: &str, trust: &Trust, vizier: &str) -> Result<usize> {
    let mut client = connect(cloud_addr, trust).await?;
    let req =
        ExecuteScriptRequest { query_str: DEBUG_SCRIPT.into(), query_name: "px debug".into(), ..Default::default() };
    let mut req = with_credential(cloud_addr, None, req)?;
    req.metadata_mut().insert(loupe_proto::headers::CLUSTER, vizier.parse().context("a vizier name is ASCII")?);
    let mut stream = client.execute_script(req).await.map_err(refused)?.into_inner();
    let mut rows = 0;
    while let Some(msg) = stream.message().await.map_err(refused)? {
        match msg.result {
            Some(execute_script_response::Result::Data(d)) if !d.arrow_batch.is_empty() => {
                let batches = loupe_proto::arrow_ipc::decode_batches(&d.arrow_batch)
                    .context("the vizier sent an unreadable batch")?;
                rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
            Some(execute_script_response::Result::Status(s)) if s.code != 0 => bail!("{}", s.message),
            Some(_) | None => {}
        }
    }
    Ok(rows)
}

/// Sends one query request (a script or SQL) and prints its tables, or its errors on stderr (exit 1).
async fn execute(
    cloud_addr: &str,
    trust: &Trust,
    token: Option<&str>,
    req: ExecuteScriptRequest,
    cluster: Option<&str>,
    output: Format,
) -> Result<ExitCode> {
    let (source, origin) = (req.query_str.clone(), req.query_name.clone());
    let mut client = connect(cloud_addr, trust).await?;
    let mut req = with_credential(cloud_addr, token, req)?;
    if let Some(cluster) = cluster {
        let value = cluster.parse().with_context(|| format!("-c {cluster:?}: a vizier name or id is ASCII"))?;
        req.metadata_mut().insert(loupe_proto::headers::CLUSTER, value);
    }
    let mut stream = client.execute_script(req).await.map_err(refused)?.into_inner();
    let mut tables: Vec<ResultTable> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    while let Some(msg) = stream.message().await.map_err(refused)? {
        match msg.result {
            Some(execute_script_response::Result::MetaData(m)) => tables.push(ResultTable::new(m)?),
            Some(execute_script_response::Result::Data(d)) => {
                let t = tables
                    .iter_mut()
                    .find(|t| t.id == d.table_id)
                    .context("server sent data for an unannounced table")?;
                t.add(&d)?;
            }
            Some(execute_script_response::Result::Status(s)) if s.code != 0 => {
                let mut err = std::io::stderr().lock();
                if s.compiler_errors.is_empty() {
                    writeln!(err, "error: {}", s.message)?;
                }
                // Drawn from the wire fields and the text we sent: px does not link the compiler.
                for ce in &s.compiler_errors {
                    writeln!(err, "{}", ce.render(&source, &origin))?;
                }
                return Ok(ExitCode::from(1));
            }
            // A cluster's partial answer: the rows shown lack some agents'. Said on stderr; still a success.
            Some(execute_script_response::Result::Stats(stats)) => warnings.extend(stats.warnings),
            Some(_) | None => {}
        }
    }
    let mut out = std::io::stdout().lock();
    output::print(&tables, output, &mut out)?;
    let mut err = std::io::stderr().lock();
    for w in &warnings {
        writeln!(err, "warning: partial result: {w}")?;
    }
    Ok(ExitCode::SUCCESS)
}
