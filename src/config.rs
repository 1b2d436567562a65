//! Settings, read once from the environment at start and passed down; nothing
//! here is global, so tests build their own from a map.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use rand::RngCore;

/// A setting that could not be used; names the variable so an operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {detail}")]
pub struct ConfigError {
    pub var: &'static str,
    pub detail: String,
}

impl ConfigError {
    fn new(var: &'static str, detail: impl Into<String>) -> Self {
        Self {
            var,
            detail: detail.into(),
        }
    }
}

/// Where the data lives, chosen by the scheme of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "sqlite:// needs a file path, e.g. sqlite://hub.sqlite3",
                ));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Ok(Self::Postgres(raw.to_owned()))
        } else {
            let scheme = raw.split("://").next().unwrap_or(raw);
            Err(ConfigError::new(
                "DATABASE_URL",
                format!("unknown scheme '{scheme}': use sqlite://PATH or postgres://..."),
            ))
        }
    }
}

/// Shows a PostgreSQL URL with every secret in it replaced, so settings can be logged.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

const REDACTED: &str = "***";

/// The URL with its password and the values of secret query parameters
/// (libpq's `password`, `sslpassword`, `oauth_client_secret`, in any case or
/// percent-encoding) replaced. A URL the parser cannot read (libpq's
/// multi-host form) could hide a secret anywhere, so only its scheme is shown.
fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw.split_once("://").map_or("", |(scheme, _)| scheme);
        return format!("{scheme}://{REDACTED}");
    };
    if url.password().is_some() {
        // Cannot fail: the URL has a password, so it has a host.
        let _ = url.set_password(Some(REDACTED));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let lower = key.to_ascii_lowercase();
                let secret = lower.contains("password") || lower.contains("secret");
                let value = if secret { REDACTED.into() } else { value };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.into()
}

/// Where the nodes of a cluster meet (`REDIS_URL`): one Redis, or with
/// `HUB_REDIS_CLUSTER=true` the seed nodes of a Redis Cluster, comma
/// separated (one is enough: the rest are learnt from it). Its `Debug`
/// shows no password.
#[derive(Clone)]
pub struct RedisUrl {
    nodes: Vec<String>,
    cluster: bool,
}

impl RedisUrl {
    pub fn parse(raw: &str, cluster: bool) -> Result<Self, ConfigError> {
        let nodes: Vec<String> = raw.split(',').map(|n| n.trim().to_owned()).collect();
        if nodes
            .iter()
            .any(|n| !n.starts_with("redis://") && !n.starts_with("rediss://"))
        {
            return Err(ConfigError::new(
                "REDIS_URL",
                "use redis://[:password@]host[:port][/db] (or rediss:// for TLS); \
                 a Redis Cluster's seed nodes are separated by commas",
            ));
        }
        if nodes.len() > 1 && !cluster {
            return Err(ConfigError::new(
                "REDIS_URL",
                "several addresses name a Redis Cluster: set HUB_REDIS_CLUSTER=true",
            ));
        }
        Ok(Self { nodes, cluster })
    }

    /// The one Redis, or the first seed of a cluster.
    pub fn first(&self) -> &str {
        &self.nodes[0]
    }

    /// Every address given (one, unless a cluster's seeds).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Whether these name a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.nodes.iter().map(|n| redact_url(n)).collect();
        if self.cluster {
            write!(f, "cluster {}", shown.join(","))
        } else {
            f.write_str(&shown.join(","))
        }
    }
}

/// How the nodes of a cluster share rooms, users and zones.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `None`: this node serves alone, over the in-process bus.
    pub redis_url: Option<RedisUrl>,
    /// How long a node's presence entries outlive it when it dies without
    /// a word; it beats three times within this.
    pub presence_ttl: Duration,
    /// Several hub processes on one machine share the port (`SO_REUSEPORT`).
    pub reuse_port: bool,
}

/// A secret (the signing key, the ingest key, the metrics token). Its `Debug`
/// never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether a caller's credential is this secret, compared in constant
    /// time so the comparison does not tell how much of a guess was right.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(given))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub key: Secret,
    /// True when no key was configured and a random one was made for this run.
    pub key_generated: bool,
    pub algorithm: Algorithm,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
}

/// Per-connection bounds; each one has its own variable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_chat_chars: usize,
    pub rate_per_sec: f64,
    pub rate_burst: u32,
    pub heartbeat: Duration,
    pub client_timeout: Duration,
    pub send_queue_bytes: usize,
    pub history_len: usize,
    pub user_recheck: Duration,
    /// The longest a socket stays open, its token or refreshes aside; it is
    /// then closed with 1012 and the client reconnects with a token it has
    /// now. `None`: no bound.
    pub max_connection_age: Option<Duration>,
    /// Above this many members a room sends a member count instead of
    /// join/leave events, so presence never costs frames quadratic in size.
    pub presence_limit: usize,
}

/// Who may open a socket and how fast a person may write, whatever the
/// socket; each bound has its own variable (`ws::admission`).
#[derive(Debug, Clone)]
pub struct Caps {
    /// Sockets open on this node; `None`: as many as the open-file limit
    /// allows, less a reserve, read at start.
    pub max_sockets: Option<usize>,
    /// Handshakes per second on this node (also the burst).
    pub handshakes_per_sec: u32,
    /// Sockets one user may hold on this node.
    pub sockets_per_user: usize,
    /// Guest sockets one client address may hold on this node.
    pub guest_sockets_per_address: usize,
    /// Chat messages one person may send per second over all their
    /// sockets, and the burst.
    pub person_rate_per_sec: f64,
    pub person_rate_burst: u32,
    /// DNS changes one user may request per second over all their sockets
    /// (also the burst): `HUB_DNS_WRITES_PER_SEC`.
    pub dns_writes_per_sec: u32,
}

/// The DNS panel's bounds, each with its own variable; every one is
/// answered with an error frame that names it, and nothing is half-applied.
#[derive(Debug, Clone, Copy)]
pub struct DnsLimits {
    /// Changes one connection may request per second (also its burst);
    /// over it a change is answered `rate_limited` and not applied.
    pub writes_per_sec: u32,
    /// Records one zone may hold.
    pub max_records: usize,
    /// Zones one user may own (staff creating for another user count
    /// against that owner); a listing of them always fits a reply.
    pub max_zones: i64,
    /// Bytes of master-file text one `dns.import` may carry.
    pub max_import_bytes: usize,
}

/// A DNS socket's frames carry an import's text JSON-escaped: quotes,
/// backslashes, tabs and newlines take two bytes each, so twice the text
/// and room for the envelope fit any master file of the allowed size.
/// (Other control characters, escaped as six bytes, are no part of a
/// master file.)
const IMPORT_ENVELOPE_BYTES: usize = 4096;

impl DnsLimits {
    /// The largest frame a DNS socket takes: the general limit, or what
    /// an import of `max_import_bytes` needs when that is more.
    pub fn max_frame_bytes(&self, general: usize) -> usize {
        general.max(2 * self.max_import_bytes + IMPORT_ENVELOPE_BYTES)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    /// HTTP worker threads; `None` is one per core.
    pub workers: Option<usize>,
    pub database_url: DatabaseUrl,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it is
    /// answered 503: an outage should fail fast, not hold every handshake.
    pub db_pool_timeout: Duration,
    pub jwt: JwtSettings,
    pub cors_allowed_origins: Option<BTreeSet<String>>,
    /// The reverse proxies (nginx, a load balancer) whose
    /// `X-Forwarded-For` names the client; empty, the peer is the client.
    pub trusted_proxies: Networks,
    pub staff_rooms: BTreeSet<String>,
    /// What a present but invalid token gets on a public chat room.
    pub invalid_token: InvalidToken,
    /// What an open socket does when its access token expires.
    pub token_expiry: TokenExpiry,
    pub password_iterations: u32,
    /// What the backend sends as `X-Hub-Ingest-Key` to post metric events.
    pub ingest_key: Option<Secret>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>`; unset,
    /// it is open and belongs behind the operator's network.
    pub metrics_token: Option<Secret>,
    /// Dashboards get at most one update per this interval.
    pub analytics_interval: Duration,
    pub limits: Limits,
    pub dns: DnsLimits,
    /// What nameservers transfer the zones from (`HUB_DNS_LISTEN`).
    pub dns_primary: DnsPrimary,
    pub caps: Caps,
    pub cluster: Cluster,
    /// How long a stopping node spreads the closing of its sockets over.
    pub drain_window: Duration,
}

/// PBKDF2 rounds for new passwords: Django 6.1's default work factor.
pub const DJANGO_ITERATIONS: u32 = 1_500_000;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://hub.sqlite3";

impl Settings {
    /// Reads the process environment. `production` (or `HUB_ENV=production`)
    /// makes a missing signing key an error instead of a warning.
    pub fn from_env(production: bool) -> Result<Self, ConfigError> {
        // A value that is not Unicode is read as unset (every setting is
        // text): required settings are then refused by name.
        Self::from_lookup(production, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        production: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let production = production || var("HUB_ENV").is_some_and(|v| v == "production");

        let database_url = DatabaseUrl::parse(
            &var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        )?;

        let configured_key = var("JWT_SIGNING_KEY").or_else(|| var("SECRET_KEY"));
        if configured_key.is_none() && production {
            return Err(ConfigError::new(
                "JWT_SIGNING_KEY",
                "not set (nor SECRET_KEY); a production hub needs the key the Django backend signs with",
            ));
        }
        let key_generated = configured_key.is_none();
        let key = match configured_key {
            Some(k) => Secret::new(k.into_bytes()),
            None => {
                let mut bytes = vec![0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                Secret::new(bytes)
            }
        };
        let algorithm = match var("JWT_ALGORITHM").as_deref().unwrap_or("HS256") {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => {
                return Err(ConfigError::new(
                    "JWT_ALGORITHM",
                    format!("'{other}' is not supported: use HS256, HS384 or HS512"),
                ));
            }
        };
        let jwt = JwtSettings {
            key,
            key_generated,
            algorithm,
            // Minutes, as simplejwt's `timedelta(minutes=...)`; a fraction
            // (`0.1`, six seconds) lets a test see several expiries quickly.
            access_lifetime: Duration::from_secs_f64(
                60.0 * number(&var, "JWT_ACCESS_TOKEN_LIFETIME", 5.0, 0.05..=24.0 * 60.0)?,
            ),
            refresh_lifetime: Duration::from_secs(
                86_400 * number(&var, "JWT_REFRESH_TOKEN_LIFETIME", 1u64, 1..=365)?,
            ),
        };

        let cors_allowed_origins = var("CORS_ALLOWED_ORIGINS").map(|v| comma_list(&v));
        let trusted_proxies = Networks::parse(
            "HUB_TRUSTED_PROXIES",
            &var("HUB_TRUSTED_PROXIES").unwrap_or_default(),
        )?;
        let invalid_token = choice(
            &var,
            "HUB_INVALID_TOKEN",
            [
                ("guest", InvalidToken::Guest),
                ("refuse", InvalidToken::Refuse),
            ],
        )?;
        let token_expiry = choice(
            &var,
            "HUB_TOKEN_EXPIRY",
            [("keep", TokenExpiry::Keep), ("close", TokenExpiry::Close)],
        )?;
        let staff_rooms =
            comma_list(&var("HUB_STAFF_ROOMS").unwrap_or_else(|| "management".into()));

        let heartbeat = Duration::from_secs(number(&var, "HUB_HEARTBEAT_SECS", 15u64, 1..=3600)?);
        let client_timeout =
            Duration::from_secs(number(&var, "HUB_CLIENT_TIMEOUT_SECS", 45u64, 2..=7200)?);
        if client_timeout <= heartbeat {
            return Err(ConfigError::new(
                "HUB_CLIENT_TIMEOUT_SECS",
                "must be longer than HUB_HEARTBEAT_SECS, or every client misses its pong",
            ));
        }
        let limits = Limits {
            max_frame_bytes: number(&var, "HUB_MAX_FRAME_BYTES", 64 * 1024, 1024..=16 << 20)?,
            max_chat_chars: number(&var, "HUB_MAX_CHAT_CHARS", 4096, 1..=1 << 20)?,
            rate_per_sec: number(&var, "HUB_RATE_PER_SEC", 10.0, 0.1..=1_000_000.0)?,
            rate_burst: number(&var, "HUB_RATE_BURST", 20, 1..=1_000_000)?,
            heartbeat,
            client_timeout,
            send_queue_bytes: number(&var, "HUB_SEND_QUEUE_BYTES", 1 << 20, 4096..=1 << 30)?,
            history_len: number(&var, "HUB_HISTORY_LEN", 50, 0..=1000)?,
            user_recheck: Duration::from_secs(number(
                &var,
                "HUB_USER_RECHECK_SECS",
                60,
                1..=86_400,
            )?),
            // Seconds; a day by default, so no socket lives on the token of
            // its handshake for longer, however long the tab stays open.
            // `0` is no bound.
            max_connection_age: match number(
                &var,
                "HUB_MAX_CONNECTION_AGE",
                86_400,
                0..=31_536_000,
            )? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            presence_limit: number(&var, "HUB_PRESENCE_LIMIT", 100, 1..=1_000_000)?,
        };

        let dns = DnsLimits {
            writes_per_sec: number(&var, "HUB_DNS_WRITES_PER_SEC", 5, 1..=1_000_000)?,
            max_records: number(&var, "HUB_DNS_MAX_RECORDS", 1000, 1..=100_000)?,
            // A user's zones are listed in one reply of at most 10,000
            // (`dns::zone::MAX_ZONES_LISTED`), so the bound stays below it.
            max_zones: number(&var, "HUB_DNS_MAX_ZONES", 100, 1..=10_000)?,
            max_import_bytes: number(
                &var,
                "HUB_DNS_MAX_IMPORT_BYTES",
                256 * 1024,
                1024..=16 << 20,
            )?,
        };

        let caps = Caps {
            max_sockets: match number(&var, "HUB_MAX_SOCKETS", 0, 0..=10_000_000)? {
                0 => None,
                n => Some(n),
            },
            handshakes_per_sec: number(&var, "HUB_MAX_HANDSHAKES_PER_SEC", 2000, 1..=1_000_000)?,
            sockets_per_user: number(&var, "HUB_MAX_SOCKETS_PER_USER", 64, 1..=1_000_000)?,
            guest_sockets_per_address: number(
                &var,
                "HUB_MAX_GUEST_SOCKETS_PER_ADDRESS",
                64,
                1..=1_000_000,
            )?,
            person_rate_per_sec: number(&var, "HUB_PERSON_RATE_PER_SEC", 10.0, 0.1..=1_000_000.0)?,
            person_rate_burst: number(&var, "HUB_PERSON_RATE_BURST", 20, 1..=1_000_000)?,
            dns_writes_per_sec: dns.writes_per_sec,
        };

        Ok(Self {
            bind: var("HUB_BIND").unwrap_or_else(|| "127.0.0.1:8000".into()),
            workers: var("HUB_WORKERS")
                .map(|_| number(&var, "HUB_WORKERS", 1, 1..=256))
                .transpose()?,
            database_url,
            db_pool_size: number(&var, "HUB_DB_POOL_SIZE", 8, 1..=256)?,
            db_pool_timeout: Duration::from_secs(number(
                &var,
                "HUB_DB_POOL_TIMEOUT_SECS",
                5,
                1..=60,
            )?),
            jwt,
            cors_allowed_origins,
            trusted_proxies,
            staff_rooms,
            invalid_token,
            token_expiry,
            password_iterations: number(
                &var,
                "HUB_PASSWORD_ITERATIONS",
                DJANGO_ITERATIONS,
                1000..=10_000_000,
            )?,
            ingest_key: var("HUB_INGEST_KEY").map(Secret::new),
            metrics_token: var("HUB_METRICS_TOKEN").map(Secret::new),
            analytics_interval: Duration::from_millis(number(
                &var,
                "HUB_ANALYTICS_INTERVAL_MS",
                1000,
                10..=60_000,
            )?),
            limits,
            dns,
            dns_primary: dns_primary(&var)?,
            caps,
            drain_window: Duration::from_secs(number(&var, "HUB_DRAIN_SECS", 10, 0..=600)?),
            cluster: Cluster {
                redis_url: redis_url(&var)?,
                presence_ttl: Duration::from_secs(number(
                    &var,
                    "HUB_PRESENCE_TTL_SECS",
                    15,
                    2..=3600,
                )?),
                reuse_port: flag(&var, "HUB_REUSE_PORT")?,
            },
        })
    }

    pub fn is_staff_room(&self, room: &str) -> bool {
        self.staff_rooms.contains(room)
    }
}

/// What a public chat room does with a token that is present but invalid
/// (expired, badly signed, of an unknown or deactivated user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidToken {
    /// Joins as a guest and is told why, as Django Channels' auth
    /// middleware made such a client an anonymous user.
    Guest,
    /// Refuses the upgrade, as every other endpoint does.
    Refuse,
}

/// What an open socket does when the access token it was opened (or last
/// refreshed) with expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenExpiry {
    /// Stays open, as under Django Channels, which checked the token once
    /// at connect: clients that never send `auth.refresh` (and do not
    /// reconnect on a close) keep working. The user is still re-checked,
    /// and the maximum connection age still applies.
    Keep,
    /// Closes with 4001 at `exp` unless `auth.refresh` moved it.
    Close,
}

/// Addresses and networks (`127.0.0.1`, `10.0.0.0/8`, `::1`), as
/// `HUB_TRUSTED_PROXIES` and `HUB_DNS_TRANSFER_ALLOW` list them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<ipnet::IpNet>);

impl Networks {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        comma_list(raw)
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            name,
                            format!("'{entry}' is not an address or a network like 10.0.0.0/8"),
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The hidden primary: a DNS listener that nameservers transfer the
/// panel's zones from.
#[derive(Debug, Clone)]
pub struct DnsPrimary {
    /// UDP and TCP, `HUB_DNS_LISTEN`; unset, no listener.
    pub listen: Option<std::net::SocketAddr>,
    /// Who may ask it anything (`HUB_DNS_TRANSFER_ALLOW`; the loopback
    /// addresses by default): a zone's records are the customer's.
    pub transfer_allow: Networks,
    pub soa: Soa,
    /// Served at the apex of a zone without an NS record of its own
    /// (`HUB_DNS_DEFAULT_NS`), absolute names.
    pub default_ns: Vec<String>,
    /// The secondaries told of each new serial (`HUB_DNS_NOTIFY`; port 53
    /// unless given).
    pub notify: Vec<std::net::SocketAddr>,
    /// `HUB_DNS_TSIG_KEYS`: when any is set, a transfer must be signed by
    /// one of them, and an answer to a signed query is signed.
    pub tsig_keys: Vec<TsigKey>,
    /// The key NOTIFY is signed with (`HUB_DNS_NOTIFY_KEY`, one of
    /// `tsig_keys` by name).
    pub notify_key: Option<TsigKey>,
    /// The name of the catalog zone (RFC 9432) listing every zone held
    /// (`HUB_DNS_CATALOG`), absolute; unset, none is served.
    pub catalog: Option<String>,
}

/// A TSIG key (RFC 8945), written as dig's `-y` takes one:
/// `[algorithm:]name:secret`, the algorithm `hmac-sha256` unless named
/// (`hmac-sha384`, `hmac-sha512`), the secret in base64.
#[derive(Debug, Clone)]
pub struct TsigKey {
    /// An absolute lower-case name (`hub-key.`).
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigKey {
    fn parse(entry: &str) -> Result<Self, ConfigError> {
        use base64::Engine;
        let bad = |why: &str| ConfigError::new("HUB_DNS_TSIG_KEYS", why.to_owned());
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        let (algorithm, name, secret) = match parts.as_slice() {
            [name, secret] => ("hmac-sha256", *name, *secret),
            [algorithm, name, secret] => (*algorithm, *name, *secret),
            _ => return Err(bad("a key is [algorithm:]name:secret")),
        };
        let algorithm = match algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => {
                return Err(bad(&format!(
                    "'{other}' is not hmac-sha256, hmac-sha384 or hmac-sha512"
                )));
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .ok()
            .filter(|bytes| bytes.len() >= 16)
            .ok_or_else(|| {
                bad(&format!(
                    "the secret of '{name}' is not base64 of 16 bytes or more"
                ))
            })?;
        Ok(Self {
            name: dns_name("HUB_DNS_TSIG_KEYS", name)?,
            algorithm,
            secret: Secret::new(secret),
        })
    }
}

/// The SOA every zone is served and exported with, beside its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// `HUB_DNS_SOA_MNAME`; unset, the zone's first name server.
    pub mname: Option<String>,
    /// `HUB_DNS_SOA_RNAME`; unset, `hostmaster.<zone>`.
    pub rname: Option<String>,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// The TTL of a negative answer (RFC 2308).
    pub minimum: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Self {
            mname: None,
            rname: None,
            refresh: 3600,
            retry: 900,
            expire: 1_209_600,
            minimum: 300,
        }
    }
}

fn dns_primary(var: &impl Fn(&str) -> Option<String>) -> Result<DnsPrimary, ConfigError> {
    let listen = var("HUB_DNS_LISTEN")
        .map(|raw| {
            raw.trim().parse().map_err(|_| {
                ConfigError::new(
                    "HUB_DNS_LISTEN",
                    format!("'{raw}' is not an address and port like 127.0.0.1:5353"),
                )
            })
        })
        .transpose()?;
    let tsig_keys = list_of(var, "HUB_DNS_TSIG_KEYS", TsigKey::parse)?;
    let defaults = Soa::default();
    let timer = |name, default| number(var, name, default, 1..=i32::MAX.unsigned_abs());
    Ok(DnsPrimary {
        listen,
        transfer_allow: Networks::parse(
            "HUB_DNS_TRANSFER_ALLOW",
            &var("HUB_DNS_TRANSFER_ALLOW").unwrap_or_else(|| "127.0.0.1, ::1".into()),
        )?,
        soa: Soa {
            mname: var("HUB_DNS_SOA_MNAME")
                .map(|raw| dns_name("HUB_DNS_SOA_MNAME", &raw))
                .transpose()?,
            rname: var("HUB_DNS_SOA_RNAME")
                .map(|raw| dns_name("HUB_DNS_SOA_RNAME", &raw))
                .transpose()?,
            refresh: timer("HUB_DNS_SOA_REFRESH", defaults.refresh)?,
            retry: timer("HUB_DNS_SOA_RETRY", defaults.retry)?,
            expire: timer("HUB_DNS_SOA_EXPIRE", defaults.expire)?,
            minimum: timer("HUB_DNS_SOA_MINIMUM", defaults.minimum)?,
        },
        default_ns: list_of(var, "HUB_DNS_DEFAULT_NS", |entry| {
            dns_name("HUB_DNS_DEFAULT_NS", entry)
        })?,
        notify_key: match var("HUB_DNS_NOTIFY_KEY") {
            None => None,
            Some(raw) => {
                let wanted = dns_name("HUB_DNS_NOTIFY_KEY", &raw)?;
                let found = tsig_keys.iter().find(|k| k.name == wanted).cloned();
                Some(found.ok_or_else(|| {
                    ConfigError::new(
                        "HUB_DNS_NOTIFY_KEY",
                        format!("'{raw}' is not a key of HUB_DNS_TSIG_KEYS"),
                    )
                })?)
            }
        },
        tsig_keys,
        catalog: var("HUB_DNS_CATALOG")
            .map(|raw| dns_name("HUB_DNS_CATALOG", &raw))
            .transpose()?,
        notify: list_of(var, "HUB_DNS_NOTIFY", secondary)?,
    })
}

/// A secondary's address from `HUB_DNS_NOTIFY`: `192.0.2.1`, `192.0.2.1:5353`,
/// `2001:db8::1` or `[2001:db8::1]:5353`.
fn secondary(entry: &str) -> Result<std::net::SocketAddr, ConfigError> {
    entry
        .parse()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| {
            ConfigError::new(
                "HUB_DNS_NOTIFY",
                format!("'{entry}' is not an address, with or without a port"),
            )
        })
}

/// A name server or mailbox from a setting, as an absolute lower-case
/// ASCII name (`ns1.example.net.`).
fn dns_name(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let parsed = hickory_proto::rr::Name::from_utf8(raw.trim())
        .ok()
        .filter(|n| n.num_labels() > 0)
        .ok_or_else(|| ConfigError::new(name, format!("'{raw}' is not a domain name")))?;
    let mut ascii = parsed.to_ascii().to_lowercase();
    if !ascii.ends_with('.') {
        ascii.push('.');
    }
    Ok(ascii)
}

/// A setting that names one of two choices; unset, the first.
fn choice<T: Copy>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    [(first, default), (second, other)]: [(&str, T); 2],
) -> Result<T, ConfigError> {
    match var(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some(v) if v == first => Ok(default),
        Some(v) if v == second => Ok(other),
        Some(v) => Err(ConfigError::new(
            name,
            format!("'{v}' is neither {first} nor {second}"),
        )),
    }
}

fn comma_list(raw: &str) -> BTreeSet<String> {
    comma_items(raw).map(str::to_owned).collect()
}

/// The entries of a comma-separated setting, in the order written.
fn comma_items(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A comma-separated setting whose order matters, each entry read by
/// `parse`; unset, none.
fn list_of<T>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    var(name).map_or(Ok(Vec::new()), |raw| comma_items(&raw).map(parse).collect())
}

/// `REDIS_URL`, read as one Redis or, with `HUB_REDIS_CLUSTER`, a Redis
/// Cluster; the flag alone names nothing to join, which is refused.
fn redis_url(var: &impl Fn(&str) -> Option<String>) -> Result<Option<RedisUrl>, ConfigError> {
    let cluster = flag(var, "HUB_REDIS_CLUSTER")?;
    match var("REDIS_URL") {
        Some(raw) => RedisUrl::parse(&raw, cluster).map(Some),
        None if cluster => Err(ConfigError::new(
            "HUB_REDIS_CLUSTER",
            "set REDIS_URL to the cluster's seed nodes too",
        )),
        None => Ok(None),
    }
}

fn flag(var: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match var(name).as_deref().map(str::trim) {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::new(
            name,
            format!("'{other}' is not a flag: use true or false"),
        )),
    }
}

fn number<T>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, format!("'{raw}' is not a number")))?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            name,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(false, |k| map.get(k).cloned())
    }

    #[test]
    fn an_unknown_database_scheme_names_the_variable() {
        let err = settings(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(err.detail.contains("mysql"));
    }

    #[test]
    fn the_access_lifetime_takes_fractional_minutes_within_its_range() {
        let s = settings(&[("JWT_ACCESS_TOKEN_LIFETIME", "0.1")]).unwrap();
        assert_eq!(s.jwt.access_lifetime.as_secs(), 6);
        for refused in ["0.01", "NaN", "1441"] {
            let err = settings(&[("JWT_ACCESS_TOKEN_LIFETIME", refused)]).unwrap_err();
            assert_eq!(err.var, "JWT_ACCESS_TOKEN_LIFETIME", "{refused}");
        }
    }

    #[test]
    fn the_signing_key_and_database_password_never_show_in_debug_output() {
        let s = settings(&[
            ("SECRET_KEY", "s3cret-django-key"),
            ("DATABASE_URL", "postgres://hub:pa55word@db/hub"),
            ("HUB_INGEST_KEY", "ingest-s3cret"),
            ("HUB_METRICS_TOKEN", "metrics-s3cret"),
            ("REDIS_URL", "redis://:redis-s3cret@cache:6379/0"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(shown.contains("postgres://hub:***@db/hub"), "{shown}");
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_seeds_and_the_flag_and_shows_no_password() {
        let s = settings(&[
            (
                "REDIS_URL",
                "redis://:s3cret@a:7000, redis://:s3cret@b:7001",
            ),
            ("HUB_REDIS_CLUSTER", "true"),
        ])
        .unwrap();
        let url = s.cluster.redis_url.as_ref().unwrap();
        assert!(url.is_cluster());
        assert_eq!(url.nodes().len(), 2);
        assert_eq!(url.first(), "redis://:s3cret@a:7000");
        let shown = format!("{url:?}");
        assert_eq!(shown, "cluster redis://:***@a:7000,redis://:***@b:7001");

        let one = settings(&[("REDIS_URL", "redis://a:6379/")]).unwrap();
        assert!(!one.cluster.redis_url.unwrap().is_cluster());
        for (url, cluster) in [
            ("redis://a:7000,redis://b:7001", "false"),
            ("redis://a:7000,http://b:7001", "true"),
        ] {
            let err = settings(&[("REDIS_URL", url), ("HUB_REDIS_CLUSTER", cluster)]).unwrap_err();
            assert_eq!(err.var, "REDIS_URL", "{url}");
        }
        let err = settings(&[("HUB_REDIS_CLUSTER", "true")]).unwrap_err();
        assert_eq!(err.var, "HUB_REDIS_CLUSTER");
    }

    #[test]
    fn every_form_of_database_secret_is_redacted() {
        for (url, secret, shown) in [
            (
                "postgres://hub:pa55word@db/hub",
                "pa55word",
                "postgres://hub:***@db/hub",
            ),
            (
                "postgres://hub@db/hub?password=pa55word",
                "pa55word",
                "postgres://hub@db/hub?password=***",
            ),
            (
                "postgresql://hub@db:5433/hub?sslmode=verify-full&sslpassword=pa55word",
                "pa55word",
                "postgresql://hub@db:5433/hub?sslmode=verify-full&sslpassword=***",
            ),
            (
                "postgres://hub@db/hub?pass%77ord=pa55word",
                "pa55word",
                "postgres://hub@db/hub?password=***",
            ),
            (
                "postgres://hub@db/hub?PASSWORD=pa55word",
                "pa55word",
                "postgres://hub@db/hub?PASSWORD=***",
            ),
            (
                "postgres://hub@db/hub?oauth_client_secret=pa55word",
                "pa55word",
                "postgres://hub@db/hub?oauth_client_secret=***",
            ),
            (
                "postgres://hub:pa%40%3A55word@db/hub",
                "55word",
                "postgres://hub:***@db/hub",
            ),
            (
                "postgres://hub:pa@55word@db/hub",
                "55word",
                "postgres://hub:***@db/hub",
            ),
            (
                "postgres://hub:pa55word@db1:5432,db2:5432/hub",
                "pa55word",
                "postgres://***",
            ),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            let debug = format!("{parsed:?}");
            assert!(!debug.contains(secret), "{url} shown as {debug}");
            assert_eq!(debug, shown, "{url}");
        }
    }

    #[test]
    fn a_secret_matches_only_itself() {
        let token = Secret::new("metrics-token");
        assert!(token.matches(b"metrics-token"));
        assert!(!token.matches(b"metrics-toke"));
        assert!(!token.matches(b"metrics-tokens"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn production_without_a_key_is_an_error_and_local_use_gets_a_random_one() {
        let map: HashMap<String, String> = HashMap::new();
        let err = Settings::from_lookup(true, |k| map.get(k).cloned()).unwrap_err();
        assert_eq!(err.var, "JWT_SIGNING_KEY");
        let local = settings(&[]).unwrap();
        assert!(local.jwt.key_generated);
        assert_eq!(local.jwt.key.as_bytes().len(), 32);
        let prod_env = settings(&[("HUB_ENV", "production")]).unwrap_err();
        assert_eq!(prod_env.var, "JWT_SIGNING_KEY");
    }

    #[test]
    fn jwt_signing_key_wins_over_secret_key() {
        let s = settings(&[("SECRET_KEY", "a"), ("JWT_SIGNING_KEY", "b")]).unwrap();
        assert_eq!(s.jwt.key.as_bytes(), b"b");
    }

    #[test]
    fn out_of_range_limits_are_refused() {
        let err = settings(&[("HUB_RATE_BURST", "0")]).unwrap_err();
        assert_eq!(err.var, "HUB_RATE_BURST");
        let err = settings(&[("HUB_HEARTBEAT_SECS", "50")]).unwrap_err();
        assert_eq!(err.var, "HUB_CLIENT_TIMEOUT_SECS");
    }

    #[test]
    fn token_expiry_keeps_sockets_open_for_a_day_by_default() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.token_expiry, TokenExpiry::Keep);
        assert_eq!(
            s.limits.max_connection_age,
            Some(Duration::from_secs(86_400))
        );
        let s = settings(&[
            ("HUB_TOKEN_EXPIRY", "close"),
            ("HUB_MAX_CONNECTION_AGE", "0"),
        ])
        .unwrap();
        assert_eq!(s.token_expiry, TokenExpiry::Close);
        assert_eq!(s.limits.max_connection_age, None);
        for (var, bad) in [
            ("HUB_TOKEN_EXPIRY", "drop"),
            ("HUB_MAX_CONNECTION_AGE", "-1"),
            ("HUB_MAX_CONNECTION_AGE", "1d"),
        ] {
            let err = settings(&[(var, bad)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.detail.contains(bad), "{err}");
        }
    }

    #[test]
    fn dns_limits_have_their_defaults_and_refuse_values_out_of_range() {
        let dns = settings(&[]).unwrap().dns;
        assert_eq!(
            (
                dns.writes_per_sec,
                dns.max_records,
                dns.max_zones,
                dns.max_import_bytes
            ),
            (5, 1000, 100, 256 * 1024)
        );
        for (var, bad) in [
            ("HUB_DNS_WRITES_PER_SEC", "0"),
            ("HUB_DNS_MAX_RECORDS", "0"),
            ("HUB_DNS_MAX_ZONES", "10001"),
            ("HUB_DNS_MAX_IMPORT_BYTES", "1023"),
            ("HUB_DNS_MAX_RECORDS", "many"),
        ] {
            let err = settings(&[(var, bad)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.detail.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_hidden_primary_is_off_by_default_and_its_settings_are_checked() {
        let off = settings(&[]).unwrap().dns_primary;
        assert_eq!(off.listen, None);
        assert!(off.transfer_allow.contains("127.0.0.1".parse().unwrap()));
        assert!(!off.transfer_allow.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(off.soa, Soa::default());
        let on = settings(&[
            ("HUB_DNS_LISTEN", "0.0.0.0:5353"),
            ("HUB_DNS_DEFAULT_NS", " NS2.Example.net , ns1.example.net."),
            ("HUB_DNS_SOA_RNAME", "dns.example.net"),
            ("HUB_DNS_SOA_MINIMUM", "60"),
            ("HUB_DNS_NOTIFY", "192.0.2.1, [2001:db8::1]:5353"),
        ])
        .unwrap()
        .dns_primary;
        assert_eq!(on.listen, Some("0.0.0.0:5353".parse().unwrap()));
        // In the order given: the first is the SOA's name server.
        assert_eq!(on.default_ns, ["ns2.example.net.", "ns1.example.net."]);
        assert_eq!(on.soa.rname.as_deref(), Some("dns.example.net."));
        assert_eq!(on.soa.minimum, 60);
        assert_eq!(
            on.notify,
            [
                "192.0.2.1:53".parse().unwrap(),
                "[2001:db8::1]:5353".parse().unwrap()
            ]
        );
        for (var, bad) in [
            ("HUB_DNS_LISTEN", "5353"),
            ("HUB_DNS_TRANSFER_ALLOW", "secondaries"),
            ("HUB_DNS_DEFAULT_NS", "ns1..example.net"),
            ("HUB_DNS_SOA_MNAME", "."),
            ("HUB_DNS_SOA_REFRESH", "0"),
            ("HUB_DNS_SOA_EXPIRE", "2147483648"),
            ("HUB_DNS_NOTIFY", "ns1.example.net"),
        ] {
            let err = settings(&[(var, bad)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.detail.contains(bad), "{err}");
        }
    }

    #[test]
    fn tsig_keys_read_as_dig_writes_them_and_never_show_their_secret() {
        let secret = "aHViLWtleS1mb3ItdGhlLXRzaWctdGVzdHMtMzJieXQ=";
        let primary = settings(&[
            (
                "HUB_DNS_TSIG_KEYS",
                &format!("Hub-Key:{secret}, hmac-sha512:other:{secret}"),
            ),
            ("HUB_DNS_NOTIFY_KEY", "hub-key."),
        ])
        .unwrap()
        .dns_primary;
        let keys: Vec<_> = primary
            .tsig_keys
            .iter()
            .map(|k| (k.name.as_str(), k.algorithm))
            .collect();
        assert_eq!(
            keys,
            [
                ("hub-key.", TsigAlgorithm::HmacSha256),
                ("other.", TsigAlgorithm::HmacSha512)
            ]
        );
        assert_eq!(primary.notify_key.unwrap().secret.as_bytes().len(), 32);
        for (var, bad) in [
            ("HUB_DNS_TSIG_KEYS", format!("hmac-md5:k:{secret}")),
            ("HUB_DNS_TSIG_KEYS", "k:c2hvcnQ=".to_owned()),
            ("HUB_DNS_TSIG_KEYS", format!("k:{secret}:extra:part")),
            ("HUB_DNS_NOTIFY_KEY", "unknown".to_owned()),
        ] {
            let err = settings(&[(var, &bad)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(
                !err.detail.contains("c2hvcnQ") && !err.detail.contains(secret),
                "{err}"
            );
        }
    }

    #[test]
    fn a_dns_socket_takes_frames_big_enough_for_the_largest_import() {
        let s = settings(&[]).unwrap();
        let frame = s.dns.max_frame_bytes(s.limits.max_frame_bytes);
        assert_eq!(frame, 2 * 256 * 1024 + 4096);
        // A larger general limit is never lowered.
        assert_eq!(s.dns.max_frame_bytes(16 << 20), 16 << 20);
    }
}
