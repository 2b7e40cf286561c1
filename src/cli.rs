//! The command line: `serve` (the default), `policy check | test | explain | graph | schema`,
//! `keys list | rotate | prune`, `demo token`, `token`, `completions`, `man`.
//!
//! Subcommands share the serve path (`policy::load_dir`, `app::build`) and write through
//! `&mut dyn Write` so tests can read what they print.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigErrors, Layer, Settings};
use crate::telemetry::logging::LogFormat;

pub mod identities;
pub mod keys;
pub mod schema;
pub mod token;
pub use keys::KeysCommand;

pub use crate::tools::EXIT_USAGE;

/// Exit code for bad configuration or policies, before anything is bound: the same
/// [`EXIT_USAGE`] as a usage error, since both mean "this invocation cannot run".
pub const EXIT_CONFIG: i32 = EXIT_USAGE;

/// `--version`: the package version and the git commit it was built from (`unknown` when the
/// build had no git; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TRUSTBRIDGE_COMMIT"),
    ")"
);

/// trustbridge: exchange platform OIDC tokens for short-lived, signed workload tokens.
#[derive(Debug, Parser)]
#[command(
    name = "trustbridge",
    version = VERSION,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve` flags, accepted without the subcommand too (`trustbridge --listen ...`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; boxing buys nothing
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The local demo issuer of the README walkthrough.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// The signing key directory: list, rotate, prune.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script: `trustbridge completions bash > /etc/bash_completion.d/trustbridge`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `trustbridge man > trustbridge.1`.
    Man,
    /// CI helper: exchange this workload's platform token (GitHub Actions, Kubernetes, a file)
    /// at a trustbridge endpoint and print the access token (or write it, 0600).
    Token(token::TokenArgs),
    /// The identity inventory of a running gateway (its admin API): who exchanged when, and
    /// which credentials went unused.
    #[command(subcommand)]
    Identities(identities::IdentitiesCommand),
}

/// The settings flags: those of `serve`, each also read from `TRUSTBRIDGE_<FLAG>`, over
/// `--config`, over defaults. Every subcommand that needs a setting (`policy`, `keys`) flattens
/// this same struct and resolves it with [`ServeArgs::settings`], so a subcommand never falls
/// back to a default the server does not run with (issue #16).
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TRUSTBRIDGE_LISTEN")]
    pub listen: Option<String>,
    /// Base URL of tenant issuers [default: http://<listen>].
    #[arg(long, env = "TRUSTBRIDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Policy directory [default: policies].
    #[arg(long, env = "TRUSTBRIDGE_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Signing key directory, created with a fresh key when empty [default: <data-dir>/keys].
    #[arg(long, env = "TRUSTBRIDGE_KEYS")]
    pub keys: Option<PathBuf>,
    /// Data directory (demo issuer keys) [default: .trustbridge].
    #[arg(long, env = "TRUSTBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Algorithm for newly generated signing keys: ES256, ES384, RS256, EdDSA [default: ES256].
    #[arg(long, env = "TRUSTBRIDGE_SIGNING_ALGORITHM")]
    pub signing_algorithm: Option<String>,
    /// Maximum lifetime of issued tokens [default: 1h].
    #[arg(long, env = "TRUSTBRIDGE_MAX_TOKEN_LIFETIME")]
    pub max_token_lifetime: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "TRUSTBRIDGE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Worker threads; 0 means one per core [default: 0].
    #[arg(long, env = "TRUSTBRIDGE_WORKERS")]
    pub workers: Option<usize>,
    /// Audit trail: `-` for stdout, or a file appended to [default: -].
    #[arg(long, env = "TRUSTBRIDGE_AUDIT_LOG")]
    pub audit_log: Option<String>,
    /// While the audit trail cannot be written: `deny` refuses exchanges (503, not ready)
    /// until it can, `continue` keeps granting [default: deny].
    #[arg(long, env = "TRUSTBRIDGE_AUDIT_FAILURE")]
    pub audit_failure: Option<String>,
    /// Which issued tokens are verified again after signing: `all`, `sample` (every key's
    /// first 64 tokens, then 1 in 64) or `load` (only the probes when a key is loaded and
    /// when it starts signing) [default: sample].
    #[arg(long, env = "TRUSTBRIDGE_VERIFY_ISSUED")]
    pub verify_issued: Option<String>,
    /// YAML file with the same settings (camelCase keys); flags and variables win.
    #[arg(long, env = "TRUSTBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. Reloaded
    /// when it changes.
    #[arg(long, env = "TRUSTBRIDGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TRUSTBRIDGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Redis for state shared by replicas (replay protection, rate limits):
    /// redis://[user:password@]host:port[/db], or rediss://... for TLS [default: memory].
    #[arg(long, env = "TRUSTBRIDGE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// PEM CA bundle the rediss:// server certificate must chain to [default: system roots].
    #[arg(long, env = "TRUSTBRIDGE_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS with Redis; needs --redis-key.
    #[arg(long, env = "TRUSTBRIDGE_REDIS_CERT")]
    pub redis_cert: Option<PathBuf>,
    /// PEM private key of --redis-cert.
    #[arg(long, env = "TRUSTBRIDGE_REDIS_KEY")]
    pub redis_key: Option<PathBuf>,
    /// File holding the Redis (ACL) password, so it stays out of URLs and process listings;
    /// the user, if any, goes in the URL.
    #[arg(long, env = "TRUSTBRIDGE_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Prefix of every Redis key [default: trustbridge:].
    #[arg(long, env = "TRUSTBRIDGE_REDIS_KEY_PREFIX")]
    pub redis_key_prefix: Option<String>,
    /// Rate limit per identity, e.g. 600/m [default: none].
    #[arg(long, env = "TRUSTBRIDGE_RATE_LIMIT_IDENTITY")]
    pub rate_limit_identity: Option<String>,
    /// Rate limit per source issuer, e.g. 6000/m [default: none].
    #[arg(long, env = "TRUSTBRIDGE_RATE_LIMIT_ISSUER")]
    pub rate_limit_issuer: Option<String>,
    /// Time in-flight requests get to finish after SIGTERM [default: 10s].
    #[arg(long, env = "TRUSTBRIDGE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// Time the listener keeps accepting (answering not-ready) after SIGTERM [default: 0s].
    #[arg(long, env = "TRUSTBRIDGE_SHUTDOWN_DELAY")]
    pub shutdown_delay: Option<String>,
    /// How often the key directory is checked for changes [default: 10s].
    #[arg(long, env = "TRUSTBRIDGE_KEYS_RELOAD_INTERVAL")]
    pub keys_reload_interval: Option<String>,
    /// Admin listener (console, read-only admin API, probes, metrics), or `off`
    /// [default: 127.0.0.1:9090]. Off loopback it requires --admin-token-file.
    #[arg(long, env = "TRUSTBRIDGE_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// File holding the bearer token the admin API requires (at least 32 characters; the
    /// file is read once at start).
    #[arg(long, env = "TRUSTBRIDGE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Development only: error responses carry the full detail (configured policy values,
    /// CEL errors, key URLs and paths). Refused unless --listen is a loopback address
    /// [default: false].
    #[arg(
        long,
        env = "TRUSTBRIDGE_VERBOSE_ERRORS",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub verbose_errors: Option<bool>,
    /// Proxies whose Forwarded / X-Forwarded-For headers are believed, as CIDR[,CIDR...]
    /// (the client is the rightmost address not in them) [default: none: the TCP peer is the
    /// client].
    #[arg(long, env = "TRUSTBRIDGE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// A credential unused for this long is reported stale by the identity inventory
    /// [default: 30d].
    #[arg(long, env = "TRUSTBRIDGE_UNUSED_AFTER")]
    pub unused_after: Option<String>,
    /// Most workload-assigned identities the inventory remembers (least recently used
    /// forgotten first) [default: 10000].
    #[arg(long, env = "TRUSTBRIDGE_MAX_WORKLOAD_IDENTITIES")]
    pub max_workload_identities: Option<usize>,
    /// How old a DPoP proof's iat may be, 1s to 10m; its jti is remembered that long
    /// [default: 60s].
    #[arg(long, env = "TRUSTBRIDGE_DPOP_PROOF_WINDOW")]
    pub dpop_proof_window: Option<String>,
    /// Export traces over OTLP/HTTP to this collector base URL (`/v1/traces` is appended);
    /// unset, the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT
    /// variables decide, and with none of them tracing is off [default: off].
    #[arg(long, env = "TRUSTBRIDGE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Time to connect (TCP and TLS) to an issuer's discovery or JWKS host, 100ms to 60s
    /// [default: 5s].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_CONNECT_TIMEOUT")]
    pub issuer_connect_timeout: Option<String>,
    /// Total time of one issuer discovery or JWKS fetch, 100ms to 2m, at least
    /// --issuer-connect-timeout [default: 5s].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_TIMEOUT")]
    pub issuer_timeout: Option<String>,
    /// Largest issuer discovery document or JWKS accepted, bytes or e.g. 256KiB, 1KiB to
    /// 4MiB [default: 256KiB].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_MAX_DOCUMENT_SIZE")]
    pub issuer_max_document_size: Option<String>,
    /// Least time between two key refreshes of one issuer for unknown kids, 1s to 1h
    /// [default: 30s].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_REFRESH_COOLDOWN")]
    pub issuer_refresh_cooldown: Option<String>,
    /// How long issuer keys stay fresh without Cache-Control max-age, 1m to 7d, between
    /// --issuer-min-ttl and --issuer-max-ttl [default: 1h].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_DEFAULT_TTL")]
    pub issuer_default_ttl: Option<String>,
    /// Lower bound on an issuer's Cache-Control max-age, 1m to 7d [default: 5m].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_MIN_TTL")]
    pub issuer_min_ttl: Option<String>,
    /// Upper bound on an issuer's Cache-Control max-age, 1m to 7d [default: 24h].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_MAX_TTL")]
    pub issuer_max_ttl: Option<String>,
    /// How long stale issuer keys keep serving while the issuer is unreachable, 0s to 7d
    /// [default: 24h].
    #[arg(long, env = "TRUSTBRIDGE_ISSUER_MAX_STALE")]
    pub issuer_max_stale: Option<String>,
}

impl ServeArgs {
    /// Merges flags (and their variables) over the config file over defaults.
    pub fn settings(&self) -> Result<Settings, ConfigErrors> {
        let flags = Layer {
            listen: self.listen.clone(),
            public_url: self.public_url.clone(),
            policies: self.policies.clone(),
            keys: self.keys.clone(),
            data_dir: self.data_dir.clone(),
            signing_algorithm: self.signing_algorithm.clone(),
            max_token_lifetime: self.max_token_lifetime.clone(),
            log_format: self.log_format,
            workers: self.workers,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            audit_log: self.audit_log.clone(),
            audit_failure: self.audit_failure.clone(),
            verify_issued: self.verify_issued.clone(),
            redis_url: self.redis_url.clone(),
            redis_key_prefix: self.redis_key_prefix.clone(),
            redis_ca_file: self.redis_ca_file.clone(),
            redis_cert: self.redis_cert.clone(),
            redis_key: self.redis_key.clone(),
            redis_password_file: self.redis_password_file.clone(),
            rate_limit_identity: self.rate_limit_identity.clone(),
            rate_limit_issuer: self.rate_limit_issuer.clone(),
            shutdown_grace: self.shutdown_grace.clone(),
            shutdown_delay: self.shutdown_delay.clone(),
            keys_reload_interval: self.keys_reload_interval.clone(),
            admin_listen: self.admin_listen.clone(),
            admin_token_file: self.admin_token_file.clone(),
            verbose_errors: self.verbose_errors,
            trusted_proxies: self.trusted_proxies.clone(),
            unused_after: self.unused_after.clone(),
            max_workload_identities: self.max_workload_identities,
            dpop_proof_window: self.dpop_proof_window.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            issuer_connect_timeout: self.issuer_connect_timeout.clone(),
            issuer_timeout: self.issuer_timeout.clone(),
            issuer_max_document_size: self.issuer_max_document_size.clone(),
            issuer_refresh_cooldown: self.issuer_refresh_cooldown.clone(),
            issuer_default_ttl: self.issuer_default_ttl.clone(),
            issuer_min_ttl: self.issuer_min_ttl.clone(),
            issuer_max_ttl: self.issuer_max_ttl.clone(),
            issuer_max_stale: self.issuer_max_stale.clone(),
        };
        let file = match &self.config {
            Some(path) => config::read_file(path)?,
            None => Layer::default(),
        };
        Settings::resolve(flags.over(file))
    }

    /// [`Self::settings`], with every problem written to `err`; `Err` holds the exit code
    /// ([`EXIT_CONFIG`]).
    pub fn settings_or_report(&self, err: &mut dyn Write) -> Result<Settings, i32> {
        self.settings().map_err(|e| {
            let _ = write!(err, "{e}");
            EXIT_CONFIG
        })
    }
}

/// Help heading of the settings flags on subcommands other than `serve`.
const SETTINGS_HEADING: &str = "Settings (as `serve` reads them)";

/// `policy` subcommands. Each reads the policy directory from its `DIR` argument, else from the
/// settings (`--policies`, `TRUSTBRIDGE_POLICIES`, `--config`), exactly as `serve` would.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; boxing buys nothing
pub enum PolicyCommand {
    /// Load and compile a policy directory as `serve` would, report every problem, and lint it
    /// (exit 0 clean, 1 errors, 2 warnings only).
    Check {
        /// The directory [default: the settings' policies].
        dir: Option<PathBuf>,
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: crate::tools::check::Format,
        /// Settings.
        #[command(flatten, next_help_heading = SETTINGS_HEADING)]
        settings: ServeArgs,
    },
    /// Run the `*.test.yaml` cases beside the policies (no network).
    Test {
        /// The directory [default: the settings' policies].
        dir: Option<PathBuf>,
        /// Settings.
        #[command(flatten, next_help_heading = SETTINGS_HEADING)]
        settings: ServeArgs,
    },
    /// Explain, check by check, why a token would be allowed or denied.
    Explain {
        /// What to explain.
        #[command(flatten)]
        args: crate::tools::explain::ExplainArgs,
        /// Settings (the policy and data directories).
        #[command(flatten, next_help_heading = SETTINGS_HEADING)]
        settings: ServeArgs,
    },
    /// Print the JSON Schema (draft 2020-12) of a policy document, for editors and CI.
    Schema,
    /// Print the trust graph (issuers -> credentials -> identities -> resources) offline.
    Graph {
        /// The directory [default: the settings' policies].
        dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: crate::policy::graph::Format,
        /// Settings.
        #[command(flatten, next_help_heading = SETTINGS_HEADING)]
        settings: ServeArgs,
    },
}

/// `demo` subcommands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Mint a subject token from the local demo issuer (its key is created on first use).
    Token(DemoTokenArgs),
}

/// Flags of `demo token`.
#[derive(Debug, Args)]
pub struct DemoTokenArgs {
    /// `sub` claim.
    #[arg(long, default_value = "repo:contoso/infra:ref:refs/heads/main")]
    pub subject: String,
    /// `aud` claim.
    #[arg(long, default_value = "api://trustbridge")]
    pub audience: String,
    /// Token lifetime.
    #[arg(long, default_value = "5m")]
    pub lifetime: String,
    /// Extra claims as NAME=VALUE (VALUE parsed as JSON when it is JSON, else a string).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// Data directory holding the demo issuer key [default: .trustbridge].
    #[arg(long, env = "TRUSTBRIDGE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Runs `policy check` with default options (text, not strict): prints a summary or every
/// problem, then lint warnings; returns the exit code (see [`crate::tools::check`]).
pub fn policy_check(dir: Option<PathBuf>, out: &mut dyn Write) -> i32 {
    let dir = dir.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_POLICIES_DIR));
    crate::tools::check::run(&dir, crate::tools::check::Options::default(), out)
}

/// Runs `demo token`: prints a freshly minted demo subject token; returns the exit code.
pub fn demo_token(
    args: &DemoTokenArgs,
    clock: &dyn Clock,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let lifetime = match humantime::parse_duration(&args.lifetime) {
        Ok(d) if d.as_secs() > 0 && d.as_secs() <= 24 * 3600 => d,
        _ => {
            let _ = writeln!(
                err,
                "--lifetime: '{}' must be a duration between 1s and 24h",
                args.lifetime
            );
            return EXIT_CONFIG;
        }
    };
    let mut extra = serde_json::Map::new();
    for claim in &args.claims {
        let Some((name, value)) = claim.split_once('=') else {
            let _ = writeln!(err, "--claim: '{claim}' must look like NAME=VALUE");
            return EXIT_CONFIG;
        };
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        extra.insert(name.to_string(), value);
    }
    let issuer = match crate::demo::DemoIssuer::open_or_create(&args.data_dir) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(err, "demo issuer: {e}");
            return 1;
        }
    };
    let claims = crate::demo::demo_claims(
        &args.subject,
        &args.audience,
        clock.unix(),
        lifetime.as_secs(),
        extra,
    );
    match issuer.mint(&claims) {
        Ok(token) => {
            let _ = writeln!(out, "{token}");
            0
        }
        Err(e) => {
            let _ = writeln!(err, "demo issuer: {e}");
            1
        }
    }
}

/// Parses `args` (the program name first); on failure prints clap's message (help and
/// `--version` to stdout, usage errors to stderr) and returns the exit code: 0 for help and
/// version, [`EXIT_USAGE`] for a usage error. clap's own usage code (2) would collide with
/// `policy check`'s "warnings only" verdict.
pub fn parse<I, T>(args: I) -> Result<Cli, i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| {
        // Nothing to do if the terminal is gone; the exit code still says what happened.
        let _ = e.print();
        if e.use_stderr() { EXIT_USAGE } else { 0 }
    })
}

/// Entry point used by `main`: parses arguments and runs the command; returns the exit code.
pub fn main() -> i32 {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Policy(PolicyCommand::Schema)) => schema::run(&mut std::io::stdout()),
        Some(Command::Policy(cmd)) => policy(cmd),
        Some(Command::Demo(DemoCommand::Token(args))) => demo_token(
            &args,
            &SystemClock,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        Some(Command::Completions { shell }) => completions(shell, &mut std::io::stdout()),
        Some(Command::Man) => man(&mut std::io::stdout()),
        Some(Command::Token(args)) => token::run(
            &args,
            &|name| std::env::var(name).ok(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        Some(Command::Identities(cmd)) => {
            identities::run(&cmd, &mut std::io::stdout(), &mut std::io::stderr())
        }
        Some(Command::Keys(cmd)) => keys::run(
            &cmd,
            &SystemClock,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
    }
}

/// Runs `completions`: writes `shell`'s completion script for every subcommand and flag.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> i32 {
    use clap::CommandFactory;
    // clap_complete panics when its writer fails (a closed pipe): render into memory first.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "trustbridge", &mut script);
    match out.write_all(&script) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Runs `man`: writes the man page (section 1, roff) of the whole command line.
pub fn man(out: &mut dyn Write) -> i32 {
    use clap::CommandFactory;
    match clap_mangen::Man::new(Cli::command()).render(out) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Runs a `policy` subcommand on the directory its settings name.
fn policy(cmd: PolicyCommand) -> i32 {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let (dir, settings) = match &cmd {
        PolicyCommand::Check { dir, settings, .. }
        | PolicyCommand::Test { dir, settings }
        | PolicyCommand::Graph { dir, settings, .. } => (dir.clone(), settings),
        PolicyCommand::Explain { settings, .. } => (None, settings),
        PolicyCommand::Schema => return schema::run(&mut out),
    };
    let settings = match settings.settings_or_report(&mut err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let dir = dir.unwrap_or_else(|| settings.policies.clone());
    match cmd {
        PolicyCommand::Check { strict, format, .. } => crate::tools::check::run(
            &dir,
            crate::tools::check::Options {
                strict,
                format,
                fetch: settings.issuer_fetch,
            },
            &mut out,
        ),
        PolicyCommand::Test { .. } => crate::tools::cases::run(&dir, SystemClock.now(), &mut out),
        PolicyCommand::Explain { mut args, .. } => {
            args.policies = Some(settings.policies);
            args.data_dir = settings.data_dir;
            args.fetch = settings.issuer_fetch;
            crate::tools::explain::run(
                &args,
                Arc::new(SystemClock),
                &mut std::io::stdin(),
                &mut out,
            )
        }
        PolicyCommand::Graph { format, .. } => {
            crate::tools::graph::run(&dir, format, &mut out, &mut err)
        }
        PolicyCommand::Schema => schema::run(&mut out),
    }
}

fn serve(args: &ServeArgs) -> i32 {
    let settings = match args.settings_or_report(&mut std::io::stderr()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let env = |name: &str| std::env::var(name).ok();
    let traces = match crate::telemetry::traces::endpoint(settings.otlp_endpoint.as_deref(), &env)
        .map(|e| crate::telemetry::traces::Pipeline::start(&e))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("trustbridge cannot start: {e}");
            return EXIT_CONFIG;
        }
    };
    crate::telemetry::logging::init(
        settings.log_format,
        "info",
        traces.as_ref().map(|t| t.layer()),
    );
    let code = serve_with(settings);
    // After the runtime stopped: the flush blocks until the last batch is sent.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

/// `serve` once logging and tracing are installed.
fn serve_with(settings: Settings) -> i32 {
    if settings.verbose_errors {
        tracing::warn!(
            listen = %settings.listen,
            "verbose errors are on: error responses disclose policy detail (development only)"
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = match crate::app::build(settings, clock) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("trustbridge cannot start: {e}");
            return EXIT_CONFIG;
        }
    };
    let system = actix_web::rt::System::new();
    if let Err(e) = system.block_on(crate::app::preflight(gateway.settings())) {
        eprintln!("trustbridge cannot start: {e}");
        return EXIT_CONFIG;
    }
    let result = system.block_on(crate::app::run(gateway));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("trustbridge: {e}");
            1
        }
    }
}

/// The runtime of a subcommand that makes one HTTP call (`token`, `identities`): current
/// thread, I/O and timers on. `None` after saying why on `err`.
pub(crate) fn one_shot_runtime(
    command: &str,
    err: &mut dyn Write,
) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            let _ = writeln!(err, "trustbridge {command}: runtime: {e}");
            None
        }
    }
}
