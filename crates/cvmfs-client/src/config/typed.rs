//! Typed client configuration with upstream's *code* defaults (client-behaviour 1.5, "C").
//!
//! The shipped `/etc/cvmfs/default.conf` of a distribution sets other values (e.g. a
//! 4000 MB quota, a shared cache); a configuration root that holds such a file gets
//! them through the normal file order. Parameters not listed here stay available through
//! [`Parameters`] for `showconfig` and variant-symlink expansion.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Parameters};

/// Upstream's truth test for switches: `yes`, `on`, `1`, `true`, any case.
pub fn is_on(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "yes" | "on" | "1" | "true")
}

/// The explicit "off" words; anything else that is not "on" is an invalid switch value.
fn is_off(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "no" | "off" | "0" | "false" | "")
}

/// Which repository revision to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSelection {
    /// The newest revision (floating root, revision checks on).
    Head,
    Tag(String),
    /// `CVMFS_REPOSITORY_DATE`, as unix seconds.
    Date(u64),
    /// A fixed root catalog hash, without manifest (`CVMFS_ROOT_HASH`).
    RootHash(String),
}

/// `CVMFS_MAGIC_XATTRS_VISIBILITY` / `CVMFS_HIDE_MAGIC_XATTRS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrVisibility {
    RootOnly,
    Never,
    Always,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub fqrn: String,
    // repository, servers, keys
    pub server_urls: Vec<String>,
    pub public_keys: Vec<PathBuf>,
    pub keys_dir: Option<PathBuf>,
    pub blacklist: PathBuf,
    pub root: RootSelection,
    pub alt_root_path: bool,
    pub auto_update: bool,
    pub max_ttl: Option<Duration>,
    pub follow_redirects: bool,
    pub send_info_header: bool,
    pub use_geoapi: bool,
    pub max_servers: Option<usize>,
    pub config_repository: Option<String>,
    // proxies and timing
    pub http_proxy: Option<String>,
    pub fallback_proxy: Option<String>,
    pub pac_urls: Vec<String>,
    pub proxy_reset_after: Duration,
    pub host_reset_after: Duration,
    pub timeout: Duration,
    pub timeout_direct: Duration,
    pub low_speed_limit: u64,
    pub max_retries: u32,
    pub backoff_init: Duration,
    pub backoff_max: Duration,
    // cache
    pub cache_base: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub shared_cache: bool,
    /// `None` = unmanaged cache (`CVMFS_QUOTA_LIMIT` ≤ 0).
    pub quota_limit_mb: Option<u64>,
    pub memcache_size_mb: u64,
    pub workspace: Option<PathBuf>,
    // kernel, ownership
    pub kcache_timeout: Duration,
    pub claim_ownership: bool,
    pub world_readable: bool,
    pub check_permissions: bool,
    pub uid_map: Option<PathBuf>,
    pub gid_map: Option<PathBuf>,
    // xattrs
    pub xattr_visibility: XattrVisibility,
    pub protected_xattrs: Vec<String>,
    pub privileged_gids: Vec<u32>,
    // logging, process
    pub syslog_level: u32,
    pub debug_log: Option<PathBuf>,
    pub usyslog: Option<PathBuf>,
    pub talk_socket: Option<PathBuf>,
    pub mount_dir: PathBuf,
}

impl ClientConfig {
    /// Types the parameters of one repository. A value that cannot be read is an error
    /// naming the file, the line and the parameter.
    pub fn from_parameters(fqrn: &str, params: &Parameters) -> Result<ClientConfig, ConfigError> {
        let g = Getter { params };
        if params.get("CVMFS_CACHE_DIR").is_some() && params.get("CVMFS_CACHE_BASE").is_some() {
            return Err(ConfigError::Conflict {
                first: "CVMFS_CACHE_DIR".into(),
                second: "CVMFS_CACHE_BASE".into(),
            });
        }
        Ok(ClientConfig {
            fqrn: fqrn.to_string(),
            server_urls: g.list("CVMFS_SERVER_URL", ';'),
            public_keys: g.list("CVMFS_PUBLIC_KEY", ':').into_iter().map(PathBuf::from).collect(),
            keys_dir: g.path("CVMFS_KEYS_DIR"),
            blacklist: g.path("CVMFS_BLACKLIST").unwrap_or_else(|| PathBuf::from("/etc/cvmfs/blacklist")),
            root: g.root_selection()?,
            alt_root_path: g.switch("CVMFS_ALT_ROOT_PATH", false)?,
            auto_update: g.switch("CVMFS_AUTO_UPDATE", true)?,
            max_ttl: g.number("CVMFS_MAX_TTL")?.filter(|&m| m > 0).map(|m| Duration::from_secs(m * 60)),
            follow_redirects: g.switch("CVMFS_FOLLOW_REDIRECTS", false)?,
            send_info_header: g.switch("CVMFS_SEND_INFO_HEADER", false)?,
            use_geoapi: g.switch("CVMFS_USE_GEOAPI", false)?,
            max_servers: g.number("CVMFS_MAX_SERVERS")?.filter(|&n| n > 0).map(|n| n as usize),
            config_repository: g.string("CVMFS_CONFIG_REPOSITORY"),
            http_proxy: g.string("CVMFS_HTTP_PROXY"),
            fallback_proxy: g.string("CVMFS_FALLBACK_PROXY"),
            pac_urls: g.list("CVMFS_PAC_URLS", ';'),
            proxy_reset_after: g.seconds("CVMFS_PROXY_RESET_AFTER", 0)?,
            host_reset_after: g.seconds("CVMFS_HOST_RESET_AFTER", 0)?,
            timeout: g.seconds("CVMFS_TIMEOUT", 5)?,
            timeout_direct: g.seconds("CVMFS_TIMEOUT_DIRECT", 5)?,
            low_speed_limit: g.number("CVMFS_LOW_SPEED_LIMIT")?.unwrap_or(1024),
            max_retries: g.number("CVMFS_MAX_RETRIES")?.unwrap_or(1).min(u32::MAX as u64) as u32,
            backoff_init: g.seconds("CVMFS_BACKOFF_INIT", 2)?,
            backoff_max: g.seconds("CVMFS_BACKOFF_MAX", 10)?,
            cache_base: g.path("CVMFS_CACHE_BASE").unwrap_or_else(|| PathBuf::from("/var/lib/cvmfs")),
            cache_dir: g.path("CVMFS_CACHE_DIR"),
            shared_cache: g.switch("CVMFS_SHARED_CACHE", false)?,
            quota_limit_mb: g.quota()?,
            memcache_size_mb: g.number("CVMFS_MEMCACHE_SIZE")?.unwrap_or(16),
            workspace: g.path("CVMFS_WORKSPACE"),
            kcache_timeout: g.seconds_signed("CVMFS_KCACHE_TIMEOUT", 60)?,
            claim_ownership: g.switch("CVMFS_CLAIM_OWNERSHIP", false)?,
            world_readable: g.switch("CVMFS_WORLD_READABLE", false)?,
            check_permissions: g.switch("CVMFS_CHECK_PERMISSIONS", false)?,
            uid_map: g.path("CVMFS_UID_MAP"),
            gid_map: g.path("CVMFS_GID_MAP"),
            xattr_visibility: g.xattr_visibility()?,
            protected_xattrs: g.list("CVMFS_XATTR_PROTECTED_XATTRS", ','),
            privileged_gids: g.gid_list()?,
            syslog_level: g.number("CVMFS_SYSLOG_LEVEL")?.unwrap_or(3).min(u32::MAX as u64) as u32,
            debug_log: g.path("CVMFS_DEBUGLOG"),
            usyslog: g.path("CVMFS_USYSLOG"),
            talk_socket: g.path("CVMFS_TALK_SOCKET"),
            mount_dir: g.path("CVMFS_MOUNT_DIR").unwrap_or_else(|| PathBuf::from("/cvmfs")),
        })
    }

    /// The cache directory: `CVMFS_CACHE_DIR`, else `<base>/shared` or `<base>/<fqrn>`.
    pub fn effective_cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let leaf = if self.shared_cache { "shared" } else { self.fqrn.as_str() };
        self.cache_base.join(leaf)
    }

    /// Where locks and the control socket live: `CVMFS_WORKSPACE`, else the cache dir.
    pub fn effective_workspace(&self) -> PathBuf {
        self.workspace.clone().unwrap_or_else(|| self.effective_cache_dir())
    }
}

/// Reads typed values and turns failures into errors that point at the assignment.
struct Getter<'a> {
    params: &'a Parameters,
}

impl Getter<'_> {
    fn string(&self, name: &str) -> Option<String> {
        self.params.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.string(name).map(PathBuf::from)
    }

    fn list(&self, name: &str, separator: char) -> Vec<String> {
        self.params
            .get(name)
            .map(|v| {
                v.split(separator).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            })
            .unwrap_or_default()
    }

    fn bad(&self, name: &str, reason: &str) -> ConfigError {
        let param = self.params.param(name);
        ConfigError::BadValue {
            file: param.map(|p| p.origin.file.clone()).unwrap_or_default(),
            line: param.map(|p| p.origin.line).unwrap_or(0),
            name: name.to_string(),
            value: param.map(|p| p.value.clone()).unwrap_or_default(),
            reason: reason.to_string(),
        }
    }

    fn switch(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(v) if is_on(v) => Ok(true),
            Some(v) if is_off(v) => Ok(false),
            Some(_) => Err(self.bad(name, "expected yes/no (also on/off, 1/0, true/false)")),
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| self.bad(name, "expected a non-negative whole number"))
            }
        }
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(name)?.unwrap_or(default)))
    }

    /// Negative values mean 0 (upstream clamps `CVMFS_KCACHE_TIMEOUT`).
    fn seconds_signed(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        match self.params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| self.bad(name, "expected a whole number of seconds"))?;
                Ok(Duration::from_secs(n.max(0) as u64))
            }
        }
    }

    fn quota(&self) -> Result<Option<u64>, ConfigError> {
        let name = "CVMFS_QUOTA_LIMIT";
        match self.params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Some(1000)),
            Some(v) => {
                let n: i64 =
                    v.parse().map_err(|_| self.bad(name, "expected megabytes, or -1 for no limit"))?;
                Ok((n > 0).then_some(n as u64))
            }
        }
    }

    fn root_selection(&self) -> Result<RootSelection, ConfigError> {
        if let Some(hash) = self.string("CVMFS_ROOT_HASH") {
            cvmfs_core::ContentHash::parse_content(&hash)
                .map_err(|e| self.bad("CVMFS_ROOT_HASH", &e.to_string()))?;
            return Ok(RootSelection::RootHash(hash));
        }
        if let Some(tag) = self.string("CVMFS_REPOSITORY_TAG") {
            return Ok(RootSelection::Tag(tag));
        }
        if let Some(date) = self.string("CVMFS_REPOSITORY_DATE") {
            let t = parse_iso_utc(&date)
                .ok_or_else(|| self.bad("CVMFS_REPOSITORY_DATE", "expected YYYY-MM-DDTHH:MM:SSZ (UTC)"))?;
            return Ok(RootSelection::Date(t));
        }
        Ok(RootSelection::Head)
    }

    fn xattr_visibility(&self) -> Result<XattrVisibility, ConfigError> {
        if let Some(v) = self.string("CVMFS_MAGIC_XATTRS_VISIBILITY") {
            return match v.to_ascii_lowercase().as_str() {
                "rootonly" => Ok(XattrVisibility::RootOnly),
                "never" => Ok(XattrVisibility::Never),
                "always" => Ok(XattrVisibility::Always),
                _ => Err(self.bad("CVMFS_MAGIC_XATTRS_VISIBILITY", "expected rootonly, never or always")),
            };
        }
        Ok(match self.params.get("CVMFS_HIDE_MAGIC_XATTRS") {
            None => XattrVisibility::RootOnly,
            Some(v) if is_on(v) => XattrVisibility::Never,
            Some(_) => XattrVisibility::Always,
        })
    }

    fn gid_list(&self) -> Result<Vec<u32>, ConfigError> {
        let name = "CVMFS_XATTR_PRIVILEGED_GIDS";
        let mut gids = vec![0];
        for item in self.list(name, ',') {
            let gid = item.parse().map_err(|_| self.bad(name, "expected a comma-separated list of gids"))?;
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        Ok(gids)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (exactly 20 characters, UTC) → unix seconds.
pub fn parse_iso_utc(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(range)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    u64::try_from(days * 86_400 + (hour * 3600 + minute * 60 + second) as i64).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
