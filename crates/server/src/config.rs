//! Reads `zoo.cfg` the way Apache ZooKeeper does (Java properties syntax) into
//! a typed [`ServerConfig`]. Unknown keys are logged and ignored; a bad value
//! stops the server with an error that names the key.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// ZooKeeper's default `jute.maxbuffer`: 0xfffff bytes.
pub const DEFAULT_JUTE_MAXBUFFER: usize = 0xfffff;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("bad value for {key} in zoo.cfg: {value:?} ({reason})")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{key} is required in zoo.cfg")]
    Missing { key: String },
    #[error("cannot read myid file {path}: {reason}")]
    MyId { path: PathBuf, reason: String },
}

/// Role of an ensemble member as written in `server.N=…[:observer]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    Participant,
    Observer,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: PeerRole,
    pub client_addr: Option<(String, u16)>,
}

/// Which four-letter words may run (`4lw.commands.whitelist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(Vec<String>),
}

impl FourLetterWhitelist {
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(words) => words.iter().any(|w| w == word),
        }
    }
}

/// Everything the server reads from zoo.cfg, with ZooKeeper's defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the config came from (None: built-in defaults).
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_port_address: IpAddr,
    pub max_client_cnxns: u32,
    /// `maxCnxns`: client connections in all (0: no limit), ZooKeeper's
    /// limit per connection factory; here the two client ports together.
    pub max_cnxns: u32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub snap_count: u64,
    pub snap_retain_count: usize,
    /// `preAllocSize` (KiB): the size each transaction-log segment is
    /// created at, filled with zeros, as ZooKeeper preallocates its log
    /// files by this much (default 64 MiB).
    pub pre_alloc_size_kb: u64,
    pub purge_interval_hours: u32,
    pub jute_maxbuffer: usize,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub extended_types_enabled: bool,
    pub enforce_quota: bool,
    /// `super:<base64 sha1>`; a client authenticating to it bypasses ACLs.
    pub super_digest: Option<String>,
    pub readonly_mode_enabled: bool,
    pub reconfig_enabled: bool,
    pub standalone_enabled: bool,
    /// `skipACL=yes`: no permission is checked (ZooKeeper's recovery switch):
    /// reads, writes, watch events and `reconfig` (otherwise the super user's).
    pub skip_acl: bool,
    pub container_check_interval_ms: u64,
    pub container_max_per_minute: u32,
    pub container_max_never_used_interval_ms: i64,
    pub servers: Vec<PeerSpec>,
    /// From `dataDir/myid`, when the config lists servers.
    pub my_id: Option<u64>,
    /// `secureClientPort` and its `ssl.*` settings: a second client port
    /// that speaks TLS.
    pub secure_client: Option<SecureClientConfig>,
    /// The admin HTTP server (`admin.*`): ZooKeeper's JSON commands.
    pub admin: AdminConfig,
    /// Prometheus metrics (`metricsProvider.*`), as ZooKeeper's
    /// PrometheusMetricsProvider serves them.
    pub prometheus: PrometheusConfig,
    /// The zoo.cfg text the server started from (`initial_configuration`).
    pub source_text: String,
    /// SASL: the JAAS file (`-Djava.security.auth.login.config`, from
    /// `SERVER_JVMFLAGS`/`JVMFLAGS` as zkServer.sh passes it).
    pub jaas_config: Option<PathBuf>,
    /// SASL: the JAAS section with the server's accounts
    /// (`zookeeper.sasl.serverconfig`, default `Server`).
    pub sasl_section: String,
    /// `zookeeper.superUser`: the SASL user who is also `super`.
    pub super_user: Option<String>,
    /// `X509AuthenticationProvider.superUser`: the TLS client (certificate
    /// subject, RFC 2253) who is also `super`.
    pub x509_super_user: Option<String>,
    /// `authProvider.N=…SASLAuthenticationProvider`: ACLs may name `sasl` ids.
    pub sasl_acls: bool,
    /// `enforce.auth.enabled` with `enforce.auth.schemes` (or the older
    /// `sessionRequireClientSASLAuth`): a client must hold an identity of one
    /// of these schemes before any request but auth and SASL; empty: off.
    pub enforce_auth_schemes: Vec<String>,
}

/// The admin HTTP server, as ZooKeeper's `admin.*` settings describe it: on
/// by default, port 8080, commands under `/commands`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `admin.enableServer`.
    pub enabled: bool,
    /// `admin.serverAddress`; unset, the client port's address. (ZooKeeper's
    /// default is every address; Corral's client port already defaults to
    /// loopback, and its admin port follows it.)
    pub address: Option<IpAddr>,
    /// `admin.serverPort`.
    pub port: u16,
    /// `admin.commandURL`.
    pub command_url: String,
}

/// `metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`
/// turns on `GET /metrics` on `metricsProvider.httpPort` (7000).
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    pub enabled: bool,
    /// `metricsProvider.httpHost`; unset, the client port's address.
    pub address: Option<IpAddr>,
    pub port: u16,
}

impl Default for PrometheusConfig {
    fn default() -> PrometheusConfig {
        PrometheusConfig {
            enabled: false,
            address: None,
            port: 7000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            enabled: true,
            address: None,
            port: 8080,
            command_url: "/commands".to_string(),
        }
    }
}

/// How client certificates are asked for (`ssl.clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Required and verified against the trust store (ZooKeeper's default).
    Need,
    /// Verified when the client sends one.
    Want,
    /// Not asked for.
    None,
}

/// A key or trust store as zoo.cfg names it (`ssl.keyStore.*`, `ssl.trustStore.*`).
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    pub location: Option<PathBuf>,
    pub password: Option<String>,
    /// `JKS`, `PEM` or `PKCS12`; unset: from the file's contents.
    pub kind: Option<String>,
}

/// The TLS client port (`secureClientPort`).
#[derive(Debug, Clone)]
pub struct SecureClientConfig {
    pub port: u16,
    pub address: IpAddr,
    pub key_store: StoreConfig,
    pub trust_store: StoreConfig,
    pub client_auth: ClientAuth,
}

impl ServerConfig {
    /// The configuration `corral server` uses without a zoo.cfg: port 2181 on
    /// loopback, data in `./corral-data`.
    pub fn standalone_default() -> ServerConfig {
        let data_dir = PathBuf::from("corral-data");
        ServerConfig {
            source: None,
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            data_log_dir: data_dir.clone(),
            data_dir,
            client_port: 2181,
            client_port_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_client_cnxns: 60,
            max_cnxns: 0,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            snap_count: 100_000,
            snap_retain_count: 3,
            pre_alloc_size_kb: 64 * 1024,
            secure_client: None,
            purge_interval_hours: 0,
            jute_maxbuffer: DEFAULT_JUTE_MAXBUFFER,
            four_letter_whitelist: FourLetterWhitelist::Only(vec!["srvr".into()]),
            extended_types_enabled: false,
            enforce_quota: false,
            super_digest: None,
            readonly_mode_enabled: false,
            reconfig_enabled: false,
            standalone_enabled: true,
            skip_acl: false,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            container_max_never_used_interval_ms: 0,
            servers: Vec::new(),
            my_id: None,
            admin: AdminConfig::default(),
            prometheus: PrometheusConfig::default(),
            source_text: String::new(),
            jaas_config: None,
            sasl_section: "Server".to_string(),
            super_user: None,
            x509_super_user: None,
            sasl_acls: false,
            enforce_auth_schemes: Vec::new(),
        }
    }

    /// Reads and validates a zoo.cfg file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        ServerConfig::load_with(path, &BTreeMap::new())
    }

    /// [`ServerConfig::standalone_default`] with the settings of
    /// [`jvm_properties`] (no zoo.cfg).
    pub fn from_jvm_properties(
        jvm: &BTreeMap<String, String>,
    ) -> Result<ServerConfig, ConfigError> {
        let defaults = ServerConfig::standalone_default();
        let mut props = jvm.clone();
        props
            .entry("dataDir".into())
            .or_insert_with(|| defaults.data_dir.display().to_string());
        props
            .entry("clientPort".into())
            .or_insert_with(|| defaults.client_port.to_string());
        ServerConfig::from_properties(&props)
    }

    /// Reads and validates a zoo.cfg file; `jvm` ([`jvm_properties`]) fills
    /// in what it does not say (ZooKeeper applies zoo.cfg after the JVM's
    /// system properties, so the file wins).
    pub fn load_with(
        path: &Path,
        jvm: &BTreeMap<String, String>,
    ) -> Result<ServerConfig, ConfigError> {
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let props = java_properties::read(std::io::BufReader::new(file)).map_err(|e| {
            ConfigError::Syntax {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let mut props: BTreeMap<String, String> = props.into_iter().collect();
        for (k, v) in jvm {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut cfg = ServerConfig::from_properties(&props)?;
        cfg.source = Some(path.to_path_buf());
        cfg.source_text = std::fs::read_to_string(path).unwrap_or_default();
        // ZooKeeper 3.5+ keeps the server lines in a separate file named by
        // `dynamicConfigFile` (written by reconfig); an ensemble's zoo.cfg of
        // that shape must work unchanged.
        if let Some(dynamic) = props.get("dynamicConfigFile") {
            let dynamic = resolve_beside(path, dynamic.trim());
            let text = std::fs::read_to_string(&dynamic).map_err(|source| ConfigError::Read {
                path: dynamic.clone(),
                source,
            })?;
            for peer in parse_members(&text)? {
                cfg.servers.retain(|p| p.id != peer.id);
                cfg.servers.push(peer);
            }
            cfg.servers.sort_by_key(|p| p.id);
        }
        if !cfg.servers.is_empty() {
            cfg.my_id = Some(read_my_id(&cfg.data_dir)?);
        }
        Ok(cfg)
    }

    /// Builds a config from already-parsed `key=value` pairs.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ServerConfig, ConfigError> {
        let mut cfg = ServerConfig::standalone_default();
        let mut min_timeout: Option<i32> = None;
        let mut max_timeout: Option<i32> = None;
        let mut data_dir: Option<PathBuf> = None;
        let mut data_log_dir: Option<PathBuf> = None;
        let mut client_port: Option<u16> = None;
        let mut secure_port: Option<u16> = None;
        let mut secure_address: Option<IpAddr> = None;
        let mut key_store = StoreConfig::default();
        let mut trust_store = StoreConfig::default();
        let mut client_auth = ClientAuth::Need;
        let mut metrics_provider: Option<bool> = None;
        let (mut enforce_auth, mut require_sasl) = (false, false);
        let mut enforce_schemes: Vec<String> = Vec::new();
        for (key, raw) in props {
            let value = raw.trim();
            match key.as_str() {
                "tickTime" => cfg.tick_time_ms = parse_positive(key, value)?,
                "initLimit" => cfg.init_limit = parse_positive(key, value)?,
                "syncLimit" => cfg.sync_limit = parse_positive(key, value)?,
                "dataDir" => data_dir = Some(PathBuf::from(value)),
                "dataLogDir" => data_log_dir = Some(PathBuf::from(value)),
                "clientPort" => client_port = Some(parse(key, value)?),
                "clientPortAddress" => cfg.client_port_address = parse_addr(key, value)?,
                "maxClientCnxns" => cfg.max_client_cnxns = parse(key, value)?,
                "maxCnxns" | "zookeeper.maxCnxns" => cfg.max_cnxns = parse(key, value)?,
                "minSessionTimeout" => min_timeout = Some(parse(key, value)?),
                "maxSessionTimeout" => max_timeout = Some(parse(key, value)?),
                "snapCount" | "zookeeper.snapCount" => cfg.snap_count = parse_positive(key, value)?,
                "preAllocSize" | "zookeeper.preAllocSize" => {
                    cfg.pre_alloc_size_kb = parse_positive(key, value)?
                }
                "autopurge.snapRetainCount" => {
                    // ZooKeeper silently raises values below 3 to 3.
                    cfg.snap_retain_count = parse::<usize>(key, value)?.max(3)
                }
                "autopurge.purgeInterval" => cfg.purge_interval_hours = parse(key, value)?,
                "jute.maxbuffer" | "zookeeper.jute.maxbuffer" => {
                    cfg.jute_maxbuffer = parse_positive(key, value)?
                }
                "4lw.commands.whitelist" | "zookeeper.4lw.commands.whitelist" => {
                    cfg.four_letter_whitelist = parse_whitelist(value)
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    cfg.extended_types_enabled = parse_bool(key, value)?
                }
                "enforceQuota" | "zookeeper.enforceQuota" => {
                    cfg.enforce_quota = parse_bool(key, value)?
                }
                "superDigest"
                | "DigestAuthenticationProvider.superDigest"
                | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if !value.starts_with("super:") {
                        return Err(bad(key, value, "expected super:<base64 sha1 digest>"));
                    }
                    cfg.super_digest = Some(value.to_string())
                }
                "readonlymode.enabled" => cfg.readonly_mode_enabled = parse_bool(key, value)?,
                "reconfigEnabled" => cfg.reconfig_enabled = parse_bool(key, value)?,
                "standaloneEnabled" => cfg.standalone_enabled = parse_bool(key, value)?,
                "skipACL" => cfg.skip_acl = value.eq_ignore_ascii_case("yes"),
                "superUser" | "zookeeper.superUser" => cfg.super_user = Some(value.to_string()),
                "X509AuthenticationProvider.superUser"
                | "zookeeper.X509AuthenticationProvider.superUser" => {
                    cfg.x509_super_user = Some(value.to_string())
                }
                "sasl.serverconfig" | "zookeeper.sasl.serverconfig" => {
                    cfg.sasl_section = value.to_string()
                }
                JAAS_PROPERTY => cfg.jaas_config = Some(PathBuf::from(value)),
                "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => {
                    enforce_auth = parse_bool(key, value)?
                }
                "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
                    enforce_schemes = value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "sessionRequireClientSASLAuth" | "zookeeper.sessionRequireClientSASLAuth" => {
                    require_sasl = parse_bool(key, value)?
                }
                k if k.starts_with("authProvider.") || k.starts_with("zookeeper.authProvider.") => {
                    if value.ends_with(".SASLAuthenticationProvider") {
                        cfg.sasl_acls = true;
                    } else if !value.ends_with(".X509AuthenticationProvider") {
                        tracing::warn!(key = %key, value = %value, "authentication provider not available in Corral; ignored");
                    }
                }
                "znode.container.checkIntervalMs" => {
                    cfg.container_check_interval_ms = parse_positive(key, value)?
                }
                "znode.container.maxPerMinute" => {
                    cfg.container_max_per_minute = parse_positive(key, value)?
                }
                "znode.container.maxNeverUsedIntervalMs" => {
                    cfg.container_max_never_used_interval_ms = parse(key, value)?
                }
                k if k.starts_with("server.") => cfg.servers.push(PeerSpec::parse(k, value)?),
                "secureClientPort" => secure_port = Some(parse(key, value)?),
                "secureClientPortAddress" => secure_address = Some(parse_addr(key, value)?),
                "ssl.keyStore.location" | "zookeeper.ssl.keyStore.location" => {
                    key_store.location = Some(PathBuf::from(value))
                }
                "ssl.keyStore.password" | "zookeeper.ssl.keyStore.password" => {
                    key_store.password = Some(value.to_string())
                }
                "ssl.keyStore.type" | "zookeeper.ssl.keyStore.type" => {
                    key_store.kind = Some(value.to_string())
                }
                "ssl.trustStore.location" | "zookeeper.ssl.trustStore.location" => {
                    trust_store.location = Some(PathBuf::from(value))
                }
                "ssl.trustStore.password" | "zookeeper.ssl.trustStore.password" => {
                    trust_store.password = Some(value.to_string())
                }
                "ssl.trustStore.type" | "zookeeper.ssl.trustStore.type" => {
                    trust_store.kind = Some(value.to_string())
                }
                "ssl.clientAuth" | "zookeeper.ssl.clientAuth" => {
                    client_auth = match value.to_ascii_lowercase().as_str() {
                        "need" | "" => ClientAuth::Need,
                        "want" => ClientAuth::Want,
                        "none" => ClientAuth::None,
                        _ => return Err(bad(key, value, "expected need, want or none")),
                    }
                }
                "admin.enableServer" | "zookeeper.admin.enableServer" => {
                    cfg.admin.enabled = parse_bool(key, value)?
                }
                "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                    cfg.admin.address = Some(parse_addr(key, value)?)
                }
                "admin.serverPort" | "zookeeper.admin.serverPort" => {
                    cfg.admin.port = parse(key, value)?
                }
                "admin.commandURL" | "zookeeper.admin.commandURL" => {
                    cfg.admin.command_url = parse_command_url(key, value)?
                }
                "metricsProvider.className" => {
                    // ZooKeeper's Prometheus provider is the one that serves anything;
                    // its default (the null provider) and others serve nothing here.
                    metrics_provider = Some(value.ends_with(".PrometheusMetricsProvider"));
                }
                "metricsProvider.httpPort" => cfg.prometheus.port = parse(key, value)?,
                "metricsProvider.httpHost" => {
                    cfg.prometheus.address = Some(parse_addr(key, value)?)
                }
                "admin.forceHttps" | "admin.portUnification" | "admin.needClientAuth"
                    if value.eq_ignore_ascii_case("true") =>
                {
                    tracing::warn!(key = %key, "the admin server speaks plain HTTP only; {key} is ignored");
                }
                // Keys ZooKeeper knows that have no effect on Corral.
                "electionAlg"
                | "quorumListenOnAllIPs"
                | "syncEnabled"
                | "globalOutstandingLimit"
                | "clientPortListenBacklog"
                | "peerType"
                | "localSessionsEnabled"
                | "localSessionsUpgradingEnabled"
                | "dynamicConfigFile"
                | "forceSync"
                | "leaderServes"
                | "cnxTimeout"
                | "serverCnxnFactory"
                | "sslQuorum"
                | "portUnification"
                | "autopurge.enabled" => {
                    tracing::debug!(key = %key, "zoo.cfg key has no effect on Corral");
                }
                k if k.starts_with("admin.")
                    || k.starts_with("group.")
                    || k.starts_with("weight.")
                    || k.starts_with("metricsProvider.")
                    || k.starts_with("ssl.")
                    || k.starts_with("quorum.") =>
                {
                    tracing::debug!(key = %key, "zoo.cfg key has no effect on Corral");
                }
                _ => tracing::warn!(key = %key, value = %value, "unknown zoo.cfg key ignored"),
            }
        }
        cfg.prometheus.enabled = metrics_provider.unwrap_or(false);
        cfg.enforce_auth_schemes =
            enforced_schemes(enforce_auth, enforce_schemes, require_sasl, cfg.sasl_acls)?;
        if let Some(port) = secure_port {
            if key_store.location.is_none() {
                return Err(ConfigError::Missing {
                    key: "ssl.keyStore.location (secureClientPort is set)".into(),
                });
            }
            cfg.secure_client = Some(SecureClientConfig {
                port,
                address: secure_address.unwrap_or(cfg.client_port_address),
                key_store,
                trust_store,
                client_auth,
            });
        }
        let data_dir = data_dir.ok_or_else(|| ConfigError::Missing {
            key: "dataDir".into(),
        })?;
        cfg.data_log_dir = data_log_dir.unwrap_or_else(|| data_dir.clone());
        cfg.data_dir = data_dir;
        match client_port {
            Some(port) => cfg.client_port = port,
            None if cfg.servers.is_empty() => {
                return Err(ConfigError::Missing {
                    key: "clientPort".into(),
                })
            }
            None => {}
        }
        let tick = i32::try_from(cfg.tick_time_ms)
            .map_err(|_| bad("tickTime", &cfg.tick_time_ms.to_string(), "too large"))?;
        cfg.min_session_timeout_ms = match min_timeout {
            Some(v) if v >= 0 => v,
            _ => tick.saturating_mul(2),
        };
        cfg.max_session_timeout_ms = match max_timeout {
            Some(v) if v >= 0 => v,
            _ => tick.saturating_mul(20),
        };
        if cfg.min_session_timeout_ms > cfg.max_session_timeout_ms {
            return Err(bad(
                "minSessionTimeout",
                &cfg.min_session_timeout_ms.to_string(),
                "must not be larger than maxSessionTimeout",
            ));
        }
        Ok(cfg)
    }

    /// The content of `/zookeeper/config` for this ensemble, in ZooKeeper's
    /// dynamic-config format (`server.N=host:quorum:election:role;addr:port`
    /// lines, then `version=<hex>`); empty for a standalone server.
    pub fn dynamic_config_text(&self, version: i64) -> String {
        if self.servers.is_empty() {
            return String::new();
        }
        let mut out = render_members(&self.servers);
        out.push_str(&format!("version={version:x}"));
        out
    }

    /// Clamps a client's requested session timeout as ZooKeeper does.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms
            .max(self.min_session_timeout_ms)
            .min(self.max_session_timeout_ms)
    }
}

fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| bad(key, value, &e.to_string()))
}

fn parse_positive<T>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let v: T = parse(key, value)?;
    if v <= T::default() {
        return Err(bad(key, value, "must be greater than 0"));
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(bad(key, value, "expected true or false")),
    }
}

fn parse_addr(key: &str, value: &str) -> Result<IpAddr, ConfigError> {
    if value == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    parse(key, value)
}

/// ZooKeeper's AuthenticationHelper: with enforcement on, the schemes must be
/// given and each must have a provider (ip and digest always; sasl once
/// registered). `sessionRequireClientSASLAuth=true` means `sasl`.
fn enforced_schemes(
    enabled: bool,
    schemes: Vec<String>,
    require_sasl: bool,
    sasl_registered: bool,
) -> Result<Vec<String>, ConfigError> {
    let mut schemes = if enabled { schemes } else { Vec::new() };
    if require_sasl && !schemes.iter().any(|s| s == "sasl") {
        schemes.push("sasl".into());
    }
    if enabled && schemes.is_empty() {
        return Err(ConfigError::Missing {
            key: "enforce.auth.schemes (enforce.auth.enabled is true)".into(),
        });
    }
    for scheme in &schemes {
        let available =
            matches!(scheme.as_str(), "ip" | "digest") || (scheme == "sasl" && sasl_registered);
        if !available {
            return Err(bad(
                "enforce.auth.schemes",
                scheme,
                "no authentication provider for this scheme (sasl needs \
                 authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider)",
            ));
        }
    }
    Ok(schemes)
}

/// The system property naming the JAAS file (SASL accounts).
const JAAS_PROPERTY: &str = "java.security.auth.login.config";

/// The settings ZooKeeper reads as Java system properties, from the flags
/// zkServer.sh gives the JVM (`JVMFLAGS`, then `SERVER_JVMFLAGS`), as zoo.cfg
/// keys: `-Dzookeeper.<key>=v` is zoo.cfg's `<key>=v` (ZooKeeper turns each
/// zoo.cfg key into the property `zookeeper.<key>`), plus the few read under
/// their own names (`readonlymode.enabled`, `jute.maxbuffer`, the JAAS
/// file). Flags for the JVM itself (`-Xmx`, logging) mean nothing here and
/// are skipped.
pub fn jvm_properties(flags: &str) -> BTreeMap<String, String> {
    const ZK_KEYS: &[&str] = &[
        "superUser",
        "X509AuthenticationProvider.superUser",
        "sasl.serverconfig",
        "DigestAuthenticationProvider.superDigest",
        "skipACL",
        "4lw.commands.whitelist",
        "extendedTypesEnabled",
        "enforceQuota",
        "snapCount",
        "preAllocSize",
        "jute.maxbuffer",
        "enforce.auth.enabled",
        "enforce.auth.schemes",
        "maxCnxns",
        "sessionRequireClientSASLAuth",
    ];
    const ZK_PREFIXES: &[&str] = &["admin.", "authProvider."];
    const OWN_NAMES: &[&str] = &["readonlymode.enabled", "jute.maxbuffer", JAAS_PROPERTY];
    let mut out = BTreeMap::new();
    for flag in flags.split_whitespace() {
        let Some((key, value)) = flag.strip_prefix("-D").and_then(|kv| kv.split_once('=')) else {
            continue;
        };
        let key = match key.strip_prefix("zookeeper.") {
            Some(k) if ZK_KEYS.contains(&k) || ZK_PREFIXES.iter().any(|p| k.starts_with(p)) => k,
            Some(_) => continue,
            None if OWN_NAMES.contains(&key) => key,
            None => continue,
        };
        out.insert(key.to_string(), value.to_string());
    }
    out
}

/// `admin.commandURL`: an absolute path; a trailing `/` is dropped (the
/// commands live below it either way).
fn parse_command_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let url = value.trim_end_matches('/');
    if !value.starts_with('/') || url.contains(['?', '#', ' ']) {
        return Err(bad(key, value, "expected a path such as /commands"));
    }
    Ok(url.to_string())
}

fn parse_whitelist(value: &str) -> FourLetterWhitelist {
    let words: Vec<String> = value
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| w == "*") {
        FourLetterWhitelist::All
    } else {
        FourLetterWhitelist::Only(words)
    }
}

/// The `server.N=…` lines of a dynamic configuration, sorted by id, each
/// ending in a newline (without the `version=` line).
pub fn render_members(peers: &[PeerSpec]) -> String {
    let mut sorted: Vec<&PeerSpec> = peers.iter().collect();
    sorted.sort_by_key(|p| p.id);
    sorted.iter().map(|p| format!("{}\n", p.line())).collect()
}

/// Parses dynamic-configuration text (`server.N=…` lines; `version=` and
/// blank lines are skipped). Lines may also be separated by commas, as
/// reconfig's member lists are.
pub fn parse_members(text: &str) -> Result<Vec<PeerSpec>, ConfigError> {
    let mut peers = Vec::new();
    for line in text.split(['\n', ',']).map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("version=") {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(
                line,
                "",
                "expected server.N=host:quorumPort:electionPort…",
            ));
        };
        let key = key.trim();
        if !key.starts_with("server.") {
            return Err(bad(
                key,
                value,
                "only server.N lines belong in a dynamic configuration",
            ));
        }
        peers.push(PeerSpec::parse(key, value.trim())?);
    }
    Ok(peers)
}

/// A relative `dynamicConfigFile` is looked up from the working directory,
/// then beside the zoo.cfg that names it.
fn resolve_beside(cfg_path: &Path, named: &str) -> PathBuf {
    let named = PathBuf::from(named);
    if named.is_absolute() || named.exists() {
        return named;
    }
    match cfg_path.parent() {
        Some(dir) => dir.join(named),
        None => named,
    }
}

impl PeerSpec {
    /// `server.N=host:q:e:role;client` as ZooKeeper's `QuorumServer.toString`
    /// writes it: the client address only when the server line gives one.
    pub fn line(&self) -> String {
        let role = match self.role {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        };
        let client = match &self.client_addr {
            Some((h, port)) => format!(";{h}:{port}"),
            None => String::new(),
        };
        format!(
            "server.{}={}:{}:{}:{}{}",
            self.id, self.host, self.quorum_port, self.election_port, role, client
        )
    }

    /// Parses one `server.N` line; `key` is `server.N`.
    pub fn parse(key: &str, value: &str) -> Result<PeerSpec, ConfigError> {
        parse_server(key, value)
    }
}

/// `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`
fn parse_server(key: &str, value: &str) -> Result<PeerSpec, ConfigError> {
    let id: u64 = key["server.".len()..]
        .parse()
        .map_err(|_| bad(key, value, "the server id after 'server.' must be a number"))?;
    let (server_part, client_part) = match value.split_once(';') {
        Some((s, c)) => (s.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    let fields: Vec<&str> = server_part.split(':').collect();
    if fields.len() < 3 || fields.len() > 4 {
        return Err(bad(
            key,
            value,
            "expected host:quorumPort:electionPort[:participant|:observer]",
        ));
    }
    let role = match fields.get(3).copied() {
        None | Some("participant") => PeerRole::Participant,
        Some("observer") => PeerRole::Observer,
        Some(_) => return Err(bad(key, value, "role must be participant or observer")),
    };
    let client_addr = match client_part {
        None | Some("") => None,
        Some(c) => Some(match c.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), parse(key, port)?),
            None => ("0.0.0.0".to_string(), parse(key, c)?),
        }),
    };
    Ok(PeerSpec {
        id,
        host: fields[0].to_string(),
        quorum_port: parse(key, fields[1])?,
        election_port: parse(key, fields[2])?,
        role,
        client_addr,
    })
}

fn read_my_id(data_dir: &Path) -> Result<u64, ConfigError> {
    let path = data_dir.join("myid");
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::MyId {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.trim().parse().map_err(|_| ConfigError::MyId {
        path,
        reason: format!("{:?} is not a number", text.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn session_timeout_bounds_default_to_two_and_twenty_ticks() {
        let cfg = ServerConfig::from_properties(&props(&[
            ("tickTime", "2000"),
            ("dataDir", "/tmp/x"),
            ("clientPort", "2182"),
        ]))
        .unwrap();
        assert_eq!(cfg.min_session_timeout_ms, 4000);
        assert_eq!(cfg.max_session_timeout_ms, 40000);
        assert_eq!(cfg.negotiate_timeout(100), 4000);
        assert_eq!(cfg.negotiate_timeout(1_000_000), 40000);
        assert_eq!(cfg.data_log_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn admin_server_is_on_port_8080_unless_zoo_cfg_says_otherwise() {
        let base = [("dataDir", "/tmp/x"), ("clientPort", "2182")];
        let cfg = ServerConfig::from_properties(&props(&base)).unwrap();
        assert!(cfg.admin.enabled);
        assert_eq!(cfg.admin.port, 8080);
        assert_eq!(cfg.admin.address, None);
        assert_eq!(cfg.admin.command_url, "/commands");
        let cfg = ServerConfig::from_properties(&props(
            &[
                &base[..],
                &[
                    ("admin.serverPort", "9090"),
                    ("admin.serverAddress", "127.0.0.2"),
                    ("admin.commandURL", "/zk/"),
                    ("admin.enableServer", "false"),
                ],
            ]
            .concat(),
        ))
        .unwrap();
        assert!(!cfg.admin.enabled);
        assert_eq!(cfg.admin.port, 9090);
        assert_eq!(cfg.admin.address, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(cfg.admin.command_url, "/zk");
        for (key, value) in [
            ("admin.serverPort", "http"),
            ("admin.commandURL", "commands"),
            ("admin.enableServer", "maybe"),
        ] {
            let err = ServerConfig::from_properties(&props(&[&base[..], &[(key, value)]].concat()))
                .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn prometheus_metrics_follow_zookeepers_metrics_provider_settings() {
        let base = [("dataDir", "/tmp/x"), ("clientPort", "2182")];
        let cfg = ServerConfig::from_properties(&props(&base)).unwrap();
        assert!(
            !cfg.prometheus.enabled,
            "ZooKeeper's default is the null provider"
        );
        let provider = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
        let cfg = ServerConfig::from_properties(&props(
            &[
                &base[..],
                &[
                    ("metricsProvider.className", provider),
                    ("metricsProvider.httpPort", "7001"),
                ],
            ]
            .concat(),
        ))
        .unwrap();
        assert!(cfg.prometheus.enabled);
        assert_eq!(cfg.prometheus.port, 7001);
        let cfg = ServerConfig::from_properties(&props(
            &[
                &base[..],
                &[(
                    "metricsProvider.className",
                    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
                )],
            ]
            .concat(),
        ))
        .unwrap();
        assert!(!cfg.prometheus.enabled);
    }

    #[test]
    fn jvm_flags_set_what_zoo_cfg_does_not() {
        let jvm = jvm_properties(
            "-Xmx1g -Djava.security.auth.login.config=/etc/zk/jaas.conf \
             -Dzookeeper.authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider \
             -Dzookeeper.superUser=admin -Dzookeeper.log.dir=/var/log -Dreadonlymode.enabled=true \
             -Dzookeeper.admin.serverPort=9999 -Dfile.encoding=UTF-8",
        );
        assert_eq!(
            jvm.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "admin.serverPort",
                "authProvider.1",
                "java.security.auth.login.config",
                "readonlymode.enabled",
                "superUser"
            ]
        );
        let cfg = ServerConfig::from_jvm_properties(&jvm).unwrap();
        assert_eq!(cfg.jaas_config, Some(PathBuf::from("/etc/zk/jaas.conf")));
        assert!(cfg.sasl_acls);
        assert_eq!(cfg.super_user.as_deref(), Some("admin"));
        assert!(cfg.readonly_mode_enabled);
        assert_eq!(cfg.sasl_section, "Server");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoo.cfg");
        std::fs::write(
            &path,
            "dataDir=/tmp/x\nclientPort=2182\nadmin.serverPort=8081\n",
        )
        .unwrap();
        let cfg = ServerConfig::load_with(&path, &jvm).unwrap();
        assert_eq!(cfg.admin.port, 8081, "zoo.cfg wins over the JVM flags");
        assert_eq!(cfg.super_user.as_deref(), Some("admin"));
    }

    #[test]
    fn enforced_authentication_needs_schemes_with_providers() {
        let base = [("dataDir", "/tmp/x"), ("clientPort", "2182")];
        let with = |extra: &[(&str, &str)]| {
            ServerConfig::from_properties(&props(&[&base[..], extra].concat()))
        };
        assert!(with(&[]).unwrap().enforce_auth_schemes.is_empty());
        let cfg = with(&[
            ("enforce.auth.enabled", "true"),
            ("enforce.auth.schemes", "digest, ip"),
        ])
        .unwrap();
        assert_eq!(cfg.enforce_auth_schemes, ["digest", "ip"]);
        let sasl = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
        let cfg = with(&[
            ("sessionRequireClientSASLAuth", "true"),
            ("authProvider.1", sasl),
        ])
        .unwrap();
        assert_eq!(cfg.enforce_auth_schemes, ["sasl"]);
        assert!(with(&[("enforce.auth.enabled", "true")]).is_err());
        let err = with(&[
            ("enforce.auth.enabled", "true"),
            ("enforce.auth.schemes", "sasl"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("SASLAuthenticationProvider"),
            "{err}"
        );
        assert!(with(&[
            ("enforce.auth.enabled", "false"),
            ("enforce.auth.schemes", "nonsense"),
        ])
        .unwrap()
        .enforce_auth_schemes
        .is_empty());
    }

    #[test]
    fn pre_alloc_size_is_in_kilobytes_and_must_be_positive() {
        let base = [("dataDir", "/tmp/x"), ("clientPort", "2182")];
        let cfg = ServerConfig::from_properties(&props(&base)).unwrap();
        assert_eq!(cfg.pre_alloc_size_kb, 65536, "ZooKeeper's default, 64 MiB");
        let cfg = ServerConfig::from_properties(&props(
            &[&base[..], &[("preAllocSize", "1024")]].concat(),
        ))
        .unwrap();
        assert_eq!(cfg.pre_alloc_size_kb, 1024);
        let err =
            ServerConfig::from_properties(&props(&[&base[..], &[("preAllocSize", "0")]].concat()))
                .unwrap_err();
        assert!(err.to_string().contains("preAllocSize"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = ServerConfig::from_properties(&props(&[
            ("tickTime", "abc"),
            ("dataDir", "/tmp/x"),
            ("clientPort", "2182"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("tickTime"), "{err}");
    }

    #[test]
    fn server_lines_parse_with_roles_and_client_ports() {
        let cfg = ServerConfig::from_properties(&props(&[
            ("dataDir", "/tmp/x"),
            ("server.1", "127.0.0.1:2888:3888"),
            ("server.2", "127.0.0.1:2889:3889:observer;127.0.0.1:2182"),
        ]))
        .unwrap();
        assert_eq!(cfg.servers.len(), 2);
        assert_eq!(cfg.servers[1].role, PeerRole::Observer);
        assert_eq!(cfg.servers[1].client_addr, Some(("127.0.0.1".into(), 2182)));
    }

    #[test]
    fn whitelist_defaults_to_srvr_only() {
        let cfg = ServerConfig::from_properties(&props(&[("dataDir", "/x"), ("clientPort", "1")]))
            .unwrap();
        assert!(cfg.four_letter_whitelist.allows("srvr"));
        assert!(!cfg.four_letter_whitelist.allows("ruok"));
        let cfg = ServerConfig::from_properties(&props(&[
            ("dataDir", "/x"),
            ("clientPort", "1"),
            ("4lw.commands.whitelist", "ruok, mntr"),
        ]))
        .unwrap();
        assert!(cfg.four_letter_whitelist.allows("mntr"));
    }

    #[test]
    fn secure_client_port_reads_zookeepers_ssl_settings() {
        let base = [("dataDir", "/x"), ("clientPort", "1")];
        let cfg = ServerConfig::from_properties(&props(&base)).unwrap();
        assert!(cfg.secure_client.is_none());
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            ServerConfig::from_properties(&props(&all))
        };
        // A TLS port needs a key store.
        assert!(matches!(
            with(&[("secureClientPort", "2")]),
            Err(ConfigError::Missing { .. })
        ));
        let cfg = with(&[
            ("secureClientPort", "2"),
            ("ssl.keyStore.location", "/k.jks"),
            ("ssl.keyStore.password", "pw"),
            ("ssl.trustStore.location", "/t.pem"),
            ("ssl.trustStore.type", "PEM"),
            ("ssl.clientAuth", "want"),
        ])
        .unwrap();
        let secure = cfg.secure_client.expect("secure client port");
        assert_eq!(secure.port, 2);
        assert_eq!(secure.address, cfg.client_port_address);
        assert_eq!(secure.key_store.password.as_deref(), Some("pw"));
        assert_eq!(secure.trust_store.kind.as_deref(), Some("PEM"));
        assert_eq!(secure.client_auth, ClientAuth::Want);
        assert!(with(&[
            ("secureClientPort", "2"),
            ("ssl.keyStore.location", "/k.jks"),
            ("ssl.clientAuth", "sometimes"),
        ])
        .is_err());
    }
}
