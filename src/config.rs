//! Command line and environment, parsed and validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "serac",
    version,
    about = "An Apache Iceberg REST catalog server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log output: auto (pretty on a terminal, JSON otherwise), pretty or json.
    #[arg(
        long,
        global = true,
        env = "SERAC_LOG_FORMAT",
        value_enum,
        default_value = "auto"
    )]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `serac=debug,sqlx=warn`.
    #[arg(long, global = true, env = "SERAC_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Iceberg REST catalog.
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Exit 0 when a running server answers `GET /health` with 200, 1 otherwise: a container
    /// health check that needs no shell or HTTP client in the image.
    Healthcheck(HealthcheckArgs),
    /// Manage warehouses.
    #[command(subcommand)]
    Warehouse(WarehouseCommand),
    /// Manage user-defined functions.
    #[command(subcommand)]
    Function(FunctionCommand),
    /// Manage the principals that obtain tokens (--auth oauth2), directly in the database.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Manage roles, their members and their grants, directly in the database.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage API keys of principals (sent as `Authorization: Bearer <key>`).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Manage the secrets stored in the database (storage profiles' secret keys).
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

/// The keys that encrypt storage profiles' secrets in the database (see the README: how
/// secrets are stored).
#[derive(Debug, Clone, Default, Args)]
pub struct SecretsArgs {
    /// A file holding the key (at least 32 bytes, e.g. `openssl rand -base64 48`) that
    /// encrypts storage profiles' secrets in the database (AES-256-GCM). Without it, secrets
    /// are stored in plain text and the server warns at start.
    #[arg(long, env = "SERAC_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,

    /// Files holding earlier keys (comma-separated): secrets encrypted with them are still
    /// read, and written again with --secrets-key-file (`serac secrets rotate` does it for
    /// all at once).
    #[arg(long, env = "SERAC_SECRETS_PREVIOUS_KEY_FILES", value_delimiter = ',')]
    pub secrets_previous_key_files: Vec<PathBuf>,
}

impl SecretsArgs {
    /// The keys, read and checked.
    pub fn keys(&self) -> Result<crate::storage::SecretKeys, String> {
        crate::storage::SecretKeys::from_files(
            self.secrets_key_file.as_deref(),
            &self.secrets_previous_key_files,
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Encrypt every stored secret with --secrets-key-file, reading those encrypted with a
    /// key of --secrets-previous-key-files (or still in plain text). Run it after every
    /// replica has the new key, before the previous key is dropped.
    Rotate {
        #[command(flatten)]
        secrets: SecretsArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// What a grant is on: a warehouse, a namespace in it, or a table or view of a namespace.
#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// The role that holds the grant.
    pub role: String,
    /// read, write, create, drop or manage-grants.
    #[arg(long)]
    pub privilege: String,
    /// The warehouse (default: the default warehouse).
    #[arg(long)]
    pub warehouse: Option<String>,
    /// A namespace, levels separated by dots (the grant reaches everything below it).
    #[arg(long)]
    pub namespace: Option<String>,
    /// A table of --namespace.
    #[arg(long, requires = "namespace", conflicts_with = "view")]
    pub table: Option<String>,
    /// A view of --namespace.
    #[arg(long, requires = "namespace")]
    pub view: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Add a role.
    Create {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove a role (its grants go with it).
    Delete {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the roles and their members.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Make a principal a member of a role.
    AddMember {
        role: String,
        principal: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Take a principal out of a role.
    RemoveMember {
        role: String,
        principal: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Give a role a privilege on an object.
    Grant(GrantArgs),
    /// Take a privilege on an object from a role.
    Revoke(GrantArgs),
    /// List a role's grants.
    Grants {
        role: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key for a principal; prints it (it is shown only now).
    Create {
        #[arg(long)]
        principal: String,
        /// How long the key is valid (e.g. `90d`); without it, until revoked.
        #[arg(long, value_parser = parse_positive_duration)]
        expires_in: Option<Duration>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List keys (never their secrets), with their last use.
    List {
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a key by its id: refused at once on every replica.
    Revoke {
        id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Add a principal; prints its client id and secret (the secret is shown only now).
    Create {
        name: String,
        /// Allowed everything, server-wide (warehouses, principals, audit log).
        #[arg(long)]
        admin: bool,
        /// A principal of the OpenID Connect provider (`--oidc-issuer`), named as its tokens'
        /// principal claim names it: made ahead of its first sign-in so that it can be given
        /// roles. It has no secret.
        #[arg(long)]
        external: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the principals (never their secrets).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Give a principal a new secret; the old one stops working for new tokens at once.
    RotateSecret {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove a principal.
    Delete {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum FunctionCommand {
    /// Add a function from a function metadata file (validated against the Iceberg REST
    /// spec's function model before it is stored).
    Create {
        /// The function's name.
        name: String,
        /// Its namespace, levels separated by dots (e.g. `analytics.udfs`).
        #[arg(long)]
        namespace: String,
        /// A JSON file holding the function metadata.
        #[arg(long)]
        file: PathBuf,
        /// The warehouse (default: the default warehouse).
        #[arg(long)]
        warehouse: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WarehouseCommand {
    /// Add a warehouse: a name (its URL prefix) and a root location.
    Create {
        name: String,
        /// Root location of the warehouse, e.g. file:///var/lib/serac/sales or
        /// s3://bucket/prefix (an S3 location needs --storage-file).
        #[arg(long)]
        location: String,
        /// A JSON file holding the warehouse's storage profile (see the README: S3
        /// warehouses). It is checked against the store before the warehouse is created.
        #[arg(long)]
        storage_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        secrets: SecretsArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Give a warehouse a new storage profile (new keys, STS role or endpoint; its location
    /// stays). It is checked against the store before it replaces the old one; running
    /// servers use it from their next request on.
    Update {
        name: String,
        /// A JSON file holding the new storage profile.
        #[arg(long)]
        storage_file: std::path::PathBuf,
        #[command(flatten)]
        secrets: SecretsArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete an empty warehouse (no namespaces, tables, views or functions, no pending
    /// purges); its grants go with it. The default warehouse cannot be deleted.
    Delete {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the warehouses.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Metadata database: postgres://user:password@host/db, or sqlite:///path/file.db.
    /// Without it, an embedded SQLite file in the data directory.
    #[arg(long, env = "SERAC_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the embedded database and the default warehouse.
    #[arg(long, env = "SERAC_DATA_DIR", default_value = "serac-data")]
    pub data_dir: PathBuf,

    /// Largest number of database connections.
    #[arg(long, env = "SERAC_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before failing with 503.
    #[arg(long, env = "SERAC_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Name of the default warehouse (served without a prefix).
    #[arg(long, env = "SERAC_DEFAULT_WAREHOUSE", default_value = "default")]
    pub default_warehouse: String,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The server's listen address (`0.0.0.0` or `::` is checked on loopback).
    #[arg(long, env = "SERAC_BIND", default_value = "127.0.0.1:8181")]
    pub bind: SocketAddr,

    /// The path to GET.
    #[arg(long, default_value = "/health")]
    pub path: String,

    /// How long to wait for the connection and for the answer.
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SERAC_BIND", default_value = "127.0.0.1:8181")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub secrets: SecretsArgs,

    /// Apply no database migrations: wait until `serac migrate` (run once, e.g. by a
    /// Kubernetes Job) has applied every migration of this build, so that replicas never race
    /// on them. Without it, `serve` migrates at start.
    #[arg(long, env = "SERAC_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Location of the default warehouse when it is first created
    /// (default: file://<data dir>/warehouse).
    #[arg(long, env = "SERAC_WAREHOUSE_LOCATION")]
    pub warehouse_location: Option<String>,

    /// Largest accepted request body.
    #[arg(long, env = "SERAC_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest number of table changes in one multi-table transaction.
    #[arg(long, env = "SERAC_MAX_TRANSACTION_CHANGES", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_transaction_changes: u32,

    /// Largest number of updates in one table or view commit.
    #[arg(long, env = "SERAC_MAX_COMMIT_UPDATES", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_commit_updates: u32,

    /// Largest number of properties of one namespace, table or view.
    #[arg(long, env = "SERAC_MAX_PROPERTIES", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_properties: u32,

    /// Largest metadata file Serac reads (registration, purge, scan planning) or writes.
    #[arg(long, env = "SERAC_MAX_METADATA_BYTES", default_value_t = crate::storage::DEFAULT_MAX_METADATA_BYTES, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_metadata_bytes: u64,

    /// Longest time a request may take before it is answered with 503.
    #[arg(long, env = "SERAC_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How often a commit that lost a race is retried inside the server.
    #[arg(long, env = "SERAC_COMMIT_RETRIES", default_value_t = 8)]
    pub commit_retries: u32,

    /// How long an Idempotency-Key is honoured.
    #[arg(long, env = "SERAC_IDEMPOTENCY_KEY_LIFETIME", default_value = "30m", value_parser = parse_duration)]
    pub idempotency_key_lifetime: Duration,

    /// Memory for cached table metadata, in MiB.
    #[arg(long, env = "SERAC_TABLE_CACHE_MB", default_value_t = 256)]
    pub table_cache_mb: u64,

    /// Scan planning: the most file scan tasks answered at once (larger plans are split).
    #[arg(long, env = "SERAC_SCAN_FILES_PER_TASK", default_value_t = 1000)]
    pub scan_files_per_task: usize,

    /// Scan planning: how long a split plan can be fetched.
    #[arg(long, env = "SERAC_SCAN_PLAN_LIFETIME", default_value = "10m", value_parser = parse_duration)]
    pub scan_plan_lifetime: Duration,

    /// Purges of dropped tables: how long a replica holds a purge task without renewing its
    /// lease. A replica that dies mid-purge delays the task this long before another (or
    /// itself, restarted) takes it over.
    #[arg(long, env = "SERAC_PURGE_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub purge_lease: Duration,

    /// Remote signing: also sign batch deletes (`POST ?delete`) whose keys all lie in the
    /// table. Their signature covers the body's SHA-256, which binds the body only if the
    /// store checks it: AWS S3 does, SeaweedFS 4.48 does not (it deletes what another body
    /// names). Off: batch deletes are refused.
    #[arg(long, env = "SERAC_SIGN_BATCH_DELETES")]
    pub sign_batch_deletes: bool,

    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish.
    #[arg(long, env = "SERAC_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// On SIGTERM or SIGINT, how long to keep serving while reporting unready, so that load
    /// balancers stop sending requests before the listener closes (Kubernetes: a few seconds).
    #[arg(long, env = "SERAC_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Change feed: how long events are kept for subscribers to resume from.
    #[arg(long, env = "SERAC_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// Audit log: how long records are kept (`0s`: forever).
    #[arg(long, env = "SERAC_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// Change feed: how often idle subscribers look for events nobody announced.
    #[arg(long, env = "SERAC_EVENT_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub event_poll_interval: Duration,

    /// Log one line per request (route, status, latency, request id).
    #[arg(long, env = "SERAC_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,

    // The HTTP edge: connections, and which browser pages may call the server.
    /// How long a client may take to send a request head (request line and headers) before
    /// its connection is closed. An idle keep-alive connection is closed after this time too.
    #[arg(long, env = "SERAC_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// Most client connections open at once; further connections wait in the listen backlog
    /// until one closes.
    #[arg(long, env = "SERAC_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Length of the listen backlog: connections the kernel completes before the server
    /// accepts them. A burst of more new connections than this loses SYNs, and those clients
    /// retry a second later. The kernel caps it at `net.core.somaxconn`.
    #[arg(long, env = "SERAC_LISTEN_BACKLOG", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub listen_backlog: u32,

    /// HTTPS: the server's certificate chain, a PEM file (end-entity certificate first).
    /// Needs `--tls-key`; both are read again on SIGHUP. Unset: plain HTTP.
    #[arg(long, env = "SERAC_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// HTTPS: the private key of `--tls-cert`, a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SERAC_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Origins (`https://ui.example.com`, comma-separated; `*`: any) whose pages may open the
    /// change feed. Unset: only pages served from the host the request names in `Host`.
    /// Clients that send no `Origin` (every non-browser client) are always allowed.
    #[arg(long, env = "SERAC_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<AllowedOrigin>,

    /// Authentication: `oauth2` (bearer tokens from POST /v1/oauth/tokens) or `none` (every
    /// request is `anonymous` and may do anything). Without a setting, Serac runs without
    /// authentication only when it listens on a loopback address.
    #[arg(long, env = "SERAC_AUTH", value_enum)]
    pub auth: Option<crate::auth::AuthMode>,

    /// How long a token issued by POST /v1/oauth/tokens is valid.
    #[arg(long, env = "SERAC_TOKEN_LIFETIME", default_value = "1h", value_parser = parse_positive_duration)]
    pub token_lifetime: Duration,

    /// A file holding the key (at least 32 bytes) that signs issued tokens. Without it, a key
    /// is made at first start and stored in the database, shared by every replica.
    #[arg(long, env = "SERAC_TOKEN_SIGNING_KEY_FILE")]
    pub token_signing_key_file: Option<PathBuf>,

    /// With authentication on, whether GET /metrics needs a token too.
    #[arg(long, env = "SERAC_METRICS_REQUIRE_TOKEN", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_require_token: bool,

    /// The client id of the admin principal made at first start with authentication on
    /// (ignored once any principal exists).
    #[arg(long, env = "SERAC_BOOTSTRAP_CLIENT_ID", hide_env_values = true)]
    pub bootstrap_client_id: Option<String>,

    /// The client secret of that principal (at least 16 characters).
    #[arg(long, env = "SERAC_BOOTSTRAP_CLIENT_SECRET", hide_env_values = true)]
    pub bootstrap_client_secret: Option<String>,

    /// OpenID Connect: the issuer (`iss`, an http(s) URL) of an identity provider whose bearer
    /// JWTs are accepted besides Serac's own tokens (needs `--auth oauth2` and
    /// `--oidc-audience`), e.g. https://keycloak.example.com/realms/data.
    #[arg(long, env = "SERAC_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// OpenID Connect: the audience (`aud`) the provider's tokens must name, e.g. the client
    /// id of Serac at the provider.
    #[arg(long, env = "SERAC_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// OpenID Connect: the URL of the provider's signing keys (a JWK set). Without it and
    /// without `--oidc-jwks-file`, the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration`.
    #[arg(long, env = "SERAC_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,

    /// OpenID Connect: a file holding the provider's signing keys (a JWK set), read again
    /// when a token names a key it does not hold.
    #[arg(long, env = "SERAC_OIDC_JWKS_FILE")]
    pub oidc_jwks_file: Option<PathBuf>,

    /// OpenID Connect: the claim of the provider's tokens that names the principal, e.g.
    /// `sub`, `preferred_username` or `email`.
    #[arg(long, env = "SERAC_OIDC_PRINCIPAL_CLAIM", default_value = "sub")]
    pub oidc_principal_claim: String,

    /// Origins (comma-separated; `*`: any) whose pages may call the REST API (CORS).
    /// Unset: no CORS headers at all, so browsers keep other sites out.
    #[arg(long, env = "SERAC_CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allowed_origins: Vec<AllowedOrigin>,
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|e| format!("'{raw}' is not a duration like 30s, 5m or 1h ({e})"))
}

/// The PEM files of HTTPS: the certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which metadata database to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseArgs {
    /// Validates the database choice. `DATABASE_URL` is honoured when no Serac setting is given.
    pub fn database(&self) -> Result<Database, String> {
        let url = self
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()));
        match url {
            None => Ok(Database::Sqlite(self.data_dir.join("serac.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url))
            }
            Some(url) if url.starts_with("sqlite://") => {
                let path = url.trim_start_matches("sqlite://");
                if path.is_empty() {
                    return Err("SERAC_DATABASE_URL: sqlite:// needs a file path, e.g. sqlite:///var/lib/serac/serac.db".into());
                }
                Ok(Database::Sqlite(PathBuf::from(path)))
            }
            Some(url) => Err(format!(
                "SERAC_DATABASE_URL: '{}' is neither postgres://... nor sqlite://...",
                redact(&url)
            )),
        }
    }
}

impl ServeArgs {
    /// Authentication as configured. With no `--auth`, `none` is chosen only for a loopback
    /// address: anywhere else the choice must be explicit.
    pub fn auth_settings(&self) -> Result<crate::auth::AuthSettings, String> {
        use crate::auth::AuthMode;
        let mode = match self.auth {
            Some(mode) => mode,
            None if self.bind.ip().is_loopback() => AuthMode::None,
            None => {
                return Err(format!(
                    "listening on {} without authentication: set --auth oauth2 (SERAC_AUTH=oauth2) \
                     to require tokens, or --auth none (SERAC_AUTH=none) to allow every request",
                    self.bind
                ));
            }
        };
        let bootstrap = match (&self.bootstrap_client_id, &self.bootstrap_client_secret) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            (None, None) => None,
            _ => {
                return Err(
                    "SERAC_BOOTSTRAP_CLIENT_ID and SERAC_BOOTSTRAP_CLIENT_SECRET go \
                            together: set both or neither"
                        .into(),
                );
            }
        };
        Ok(crate::auth::AuthSettings {
            mode,
            token_lifetime: self.token_lifetime,
            signing_key_file: self.token_signing_key_file.clone(),
            bootstrap,
            oidc: self.oidc_settings(mode)?,
        })
    }

    /// The OpenID Connect provider, when `--oidc-issuer` is set.
    fn oidc_settings(
        &self,
        mode: crate::auth::AuthMode,
    ) -> Result<Option<crate::auth::oidc::OidcSettings>, String> {
        use crate::auth::oidc::{JwksSource, OidcSettings};
        let Some(issuer) = &self.oidc_issuer else {
            let stray = [
                ("SERAC_OIDC_AUDIENCE", self.oidc_audience.is_some()),
                ("SERAC_OIDC_JWKS_URL", self.oidc_jwks_url.is_some()),
                ("SERAC_OIDC_JWKS_FILE", self.oidc_jwks_file.is_some()),
            ];
            return match stray.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(format!(
                    "{name} is set but SERAC_OIDC_ISSUER (--oidc-issuer) is not: OpenID Connect \
                     needs the provider's issuer"
                )),
                None => Ok(None),
            };
        };
        if mode != crate::auth::AuthMode::Oauth2 {
            return Err(
                "SERAC_OIDC_ISSUER: OpenID Connect needs authentication on (--auth oauth2)".into(),
            );
        }
        let http_url = |raw: &str| {
            url::Url::parse(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        };
        if http_url(issuer).is_none() {
            return Err(format!(
                "SERAC_OIDC_ISSUER: '{issuer}' is not an http(s) URL such as \
                 https://keycloak.example.com/realms/data"
            ));
        }
        let Some(audience) = self.oidc_audience.clone().filter(|a| !a.is_empty()) else {
            return Err(
                "SERAC_OIDC_AUDIENCE: --oidc-issuer needs --oidc-audience, the 'aud' the \
                 provider's tokens name for this server"
                    .into(),
            );
        };
        let jwks = match (&self.oidc_jwks_url, &self.oidc_jwks_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "SERAC_OIDC_JWKS_URL and SERAC_OIDC_JWKS_FILE: set one of them, \
                            or neither to discover the keys from the issuer"
                        .into(),
                );
            }
            (Some(url), None) if http_url(url).is_none() => {
                return Err(format!(
                    "SERAC_OIDC_JWKS_URL: '{url}' is not an http(s) URL"
                ));
            }
            (Some(url), None) => JwksSource::Url(url.clone()),
            (None, Some(file)) => JwksSource::File(file.clone()),
            (None, None) => JwksSource::Discovery,
        };
        let claim = self.oidc_principal_claim.trim();
        if claim.is_empty() {
            return Err(
                "SERAC_OIDC_PRINCIPAL_CLAIM must name a claim, e.g. sub or preferred_username"
                    .into(),
            );
        }
        Ok(Some(OidcSettings {
            issuer: issuer.clone(),
            audience,
            jwks,
            principal_claim: claim.to_owned(),
        }))
    }

    /// The caps on one request's work.
    pub fn limits(&self) -> crate::catalog::Limits {
        crate::catalog::Limits {
            max_transaction_changes: self.max_transaction_changes as usize,
            max_commit_updates: self.max_commit_updates as usize,
            max_properties: self.max_properties as usize,
            max_metadata_bytes: self.max_metadata_bytes,
        }
    }

    /// Where the certificate and key of HTTPS are, or `None` for plain HTTP.
    pub fn tls(&self) -> Result<Option<TlsFiles>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(
                "SERAC_TLS_KEY: --tls-cert is set but --tls-key is not; HTTPS needs both (or neither for plain HTTP)".into(),
            ),
            (None, Some(_)) => Err(
                "SERAC_TLS_CERT: --tls-key is set but --tls-cert is not; HTTPS needs both (or neither for plain HTTP)".into(),
            ),
        }
    }

    /// The default warehouse location: the flag, else `file://<absolute data dir>/warehouse`.
    pub fn default_warehouse_location(&self) -> Result<String, String> {
        match &self.warehouse_location {
            Some(location) => Ok(location.clone()),
            None => {
                let dir = absolute(&self.database.data_dir.join("warehouse"))?;
                Ok(format!("file://{}", dir.display()))
            }
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path)
        .map_err(|e| format!("SERAC_DATA_DIR: cannot resolve '{}': {e}", path.display()))
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A browser origin allowed by a setting: `*`, or one origin in its serialized form
/// (`scheme://host[:port]`, lower case, without the scheme's default port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    Any,
    Exact(String),
}

impl AllowedOrigin {
    /// Whether `origin` (an `Origin` header value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(allowed) => serialize_origin(origin).is_some_and(|o| &o == allowed),
        }
    }
}

/// The serialized form of an origin such as `HTTPS://UI.example.com:443`
/// (`https://ui.example.com`), or `None` when it is not an http(s) origin.
pub fn serialize_origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn parse_origin(raw: &str) -> Result<AllowedOrigin, String> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(AllowedOrigin::Any);
    }
    let invalid = || {
        format!(
            "'{raw}' is not an origin like https://ui.example.com or http://localhost:3000 (or `*`)"
        )
    };
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !raw.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    match serialize_origin(raw) {
        Some(origin) if bare => Ok(AllowedOrigin::Exact(origin)),
        _ => Err(invalid()),
    }
}

fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    let duration = parse_duration(raw)?;
    if duration.is_zero() {
        return Err(format!("'{raw}' must be longer than zero"));
    }
    Ok(duration)
}
