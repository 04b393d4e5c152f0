//! Client configuration as upstream reads it: the file hierarchy under `/etc/cvmfs` (or
//! any root, so tests need no `/etc`), the config repository, `-o config=a:b` files,
//! protected parameters, `@fqrn@`/`@org@` templates, and the `showconfig` dump.
//!
//! [`Parameters`] holds every assignment with the file and line it came from (unknown
//! parameters included, for `showconfig`); [`typed::ClientConfig`] turns it into typed
//! values with upstream's code defaults, and a bad value is an error naming the file, the
//! line and the parameter.

pub mod shell;
pub mod typed;
pub use typed::{ClientConfig, RootSelection, XattrVisibility};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use shell::{Assignment, Origin, Scope, VarLookup};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}:{line}: {message}", file.display())]
    Syntax { file: PathBuf, line: usize, message: String },
    #[error("cannot read configuration file {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {name}={value:?}: {reason}", file.display())]
    BadValue { file: PathBuf, line: usize, name: String, value: String, reason: String },
    #[error("{name} is required but not set (set it in /etc/cvmfs/default.local or config.d/<repo>.local)")]
    Missing { name: String },
    #[error("required configuration repository directory does not exist: {}", path.display())]
    ConfigRepoMissing { path: PathBuf },
    #[error("{first} and {second} are mutually exclusive (illegal options)")]
    Conflict { first: String, second: String },
}

/// One recorded parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub value: String,
    pub origin: Origin,
}

/// Every parameter the configuration files set, with where each came from.
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    params: BTreeMap<String, Param>,
}

impl Parameters {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(|p| p.value.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.params.iter()
    }

    /// Sets a value from outside the files (e.g. `cvmfs_talk`), recorded with that source.
    pub fn set(&mut self, name: &str, value: &str, source: &str) {
        let origin = Origin { file: PathBuf::from(source), line: 0 };
        self.params.insert(name.to_string(), Param { value: value.to_string(), origin });
    }

    /// The `cvmfs2 -o parse` / `showconfig` dump: sorted `NAME=VALUE    # from FILE`.
    pub fn dump(&self) -> String {
        let mut out = String::from("# CernVM-FS parameters:\n");
        for (name, param) in &self.params {
            out.push_str(&format!(
                "{name}={}    # from {}\n",
                shell_escape(&param.value),
                param.origin.file.display()
            ));
        }
        out
    }

    /// Replaces `@fqrn@` and `@org@` in every value.
    fn apply_templates(&mut self, fqrn: &str) {
        let org = fqrn.split('.').next().unwrap_or(fqrn);
        for param in self.params.values_mut() {
            param.value = param.value.replace("@fqrn@", fqrn).replace("@org@", org);
        }
    }
}

/// Single-quotes a value unless it consists only of `[0-9A-Za-z/:._,-]` (upstream's rule).
pub fn shell_escape(value: &str) -> String {
    let plain = value.chars().all(|c| c.is_ascii_alphanumeric() || "/:._,-".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "\\'"))
    }
}

/// What to read and from where.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// Prefix of `/etc/cvmfs` (`/` in production; a temp dir in tests).
    pub root: PathBuf,
    /// The repository; `None` reads only the global files (steps 1, 2, 3 and 5).
    pub fqrn: Option<String>,
    /// `-o config=a:b`: read exactly these files instead of the hierarchy.
    pub explicit_files: Option<Vec<PathBuf>>,
    /// The process environment as seen by the files (`$VAR` references fall back to it).
    pub environment: BTreeMap<String, String>,
    /// Where mounted repositories live (`CVMFS_MOUNT_DIR` default); the config repository
    /// is read below `<mount_dir>/<config repo>/etc/cvmfs`. `None` means `<root>/cvmfs`.
    pub mount_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// The system hierarchy under `/`, with the process environment.
    pub fn system(fqrn: Option<&str>) -> ConfigSource {
        ConfigSource {
            root: PathBuf::from("/"),
            fqrn: fqrn.map(str::to_string),
            explicit_files: None,
            environment: std::env::vars().collect(),
            mount_dir: None,
        }
    }

    /// [`ConfigSource::system`], read below `$CVMFS_CONFIG_ROOT` instead of `/` when that
    /// environment variable is set (tests, unprivileged set-ups).
    pub fn from_environment(fqrn: Option<&str>) -> ConfigSource {
        let mut source = ConfigSource::system(fqrn);
        if let Ok(root) = std::env::var("CVMFS_CONFIG_ROOT") {
            source.root = root.into();
        }
        source
    }

    fn etc(&self) -> PathBuf {
        self.root.join("etc/cvmfs")
    }
}

/// Reads the configuration for a repository (or the global one) in upstream's order.
pub fn load(source: &ConfigSource) -> Result<Parameters, ConfigError> {
    let mut reader = Reader::new(source);
    if let Some(files) = &source.explicit_files {
        for file in files {
            reader.read_required(file)?;
        }
    } else {
        read_hierarchy(source, &mut reader)?;
    }
    let mut params = reader.params;
    if let Some(fqrn) = &source.fqrn {
        params.apply_templates(fqrn);
    }
    Ok(params)
}

fn read_hierarchy(source: &ConfigSource, reader: &mut Reader<'_>) -> Result<(), ConfigError> {
    let etc = source.etc();
    reader.read_optional(&etc.join("default.conf"))?;
    for file in sorted_conf_files(&etc.join("default.d")) {
        reader.read_optional(&file)?;
    }
    reader.protect("CVMFS_CONFIG_REPOSITORY");
    let config_repo = config_repository_etc(source, reader)?;
    if let (Some(repo_etc), Some(_)) = (&config_repo, &source.fqrn) {
        reader.read_optional(&repo_etc.join("default.conf"))?;
    }
    reader.read_optional(&etc.join("default.local"))?;
    let Some(fqrn) = &source.fqrn else { return Ok(()) };
    let domain = fqrn.split_once('.').map(|(_, d)| d).unwrap_or("");
    if let Some(repo_etc) = &config_repo {
        reader.read_optional(&repo_etc.join(format!("domain.d/{domain}.conf")))?;
    }
    reader.read_optional(&etc.join(format!("domain.d/{domain}.conf")))?;
    reader.read_optional(&etc.join(format!("domain.d/{domain}.local")))?;
    if let Some(repo_etc) = &config_repo {
        reader.read_optional(&repo_etc.join(format!("config.d/{fqrn}.conf")))?;
    }
    reader.read_optional(&etc.join(format!("config.d/{fqrn}.conf")))?;
    reader.read_optional(&etc.join(format!("config.d/{fqrn}.local")))?;
    Ok(())
}

/// `<mount dir>/<config repo>/etc/cvmfs`, if a config repository is set, is a valid
/// name and is not the repository being configured.
fn config_repository_etc(source: &ConfigSource, reader: &Reader<'_>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(repo) = reader.params.get("CVMFS_CONFIG_REPOSITORY").filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let valid = repo.contains('.')
        && repo.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !repo.starts_with('.');
    if !valid || source.fqrn.as_deref() == Some(repo) {
        return Ok(None);
    }
    let mount_dir = source
        .mount_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(reader.params.get("CVMFS_MOUNT_DIR").unwrap_or("/cvmfs")));
    let dir = mount_dir.join(repo).join("etc/cvmfs");
    if dir.is_dir() {
        return Ok(Some(dir));
    }
    let required = reader.params.get("CVMFS_CONFIG_REPO_REQUIRED").is_some_and(typed::is_on);
    if required {
        return Err(ConfigError::ConfigRepoMissing { path: mount_dir.join(repo) });
    }
    tracing::warn!(path = %dir.display(), "configuration repository is not available; continuing without it");
    Ok(None)
}

fn sorted_conf_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "conf") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Accumulates parameters over the files, enforcing `readonly` and protected names.
struct Reader<'a> {
    source: &'a ConfigSource,
    params: Parameters,
    readonly: BTreeMap<String, ()>,
    protected: BTreeMap<String, String>,
}

impl<'a> Reader<'a> {
    fn new(source: &'a ConfigSource) -> Self {
        Reader {
            source,
            params: Parameters::default(),
            readonly: BTreeMap::new(),
            protected: BTreeMap::new(),
        }
    }

    fn protect(&mut self, name: &str) {
        let current = self.params.get(name).unwrap_or("").to_string();
        self.protected.insert(name.to_string(), current);
    }

    fn read_optional(&mut self, file: &Path) -> Result<(), ConfigError> {
        match std::fs::read_to_string(file) {
            Ok(text) => self.evaluate(&text, file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Read { file: file.to_path_buf(), source }),
        }
    }

    fn read_required(&mut self, file: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| ConfigError::Read { file: file.to_path_buf(), source })?;
        self.evaluate(&text, file)
    }

    fn evaluate(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        tracing::debug!(file = %file.display(), "reading configuration");
        shell::evaluate(text, file, self)
    }
}

impl VarLookup for Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if name == "CVMFS_FQRN" {
            if let Some(fqrn) = &self.source.fqrn {
                return Some(fqrn.clone());
            }
        }
        if name == "CVMFS_ARCH" {
            return Some(std::env::consts::ARCH.to_string());
        }
        self.params.get(name).map(str::to_string).or_else(|| self.source.environment.get(name).cloned())
    }
}

impl Scope for Reader<'_> {
    fn assign(&mut self, assignment: Assignment, file: &Path) -> Result<(), ConfigError> {
        let name = assignment.name;
        if self.readonly.contains_key(&name) {
            tracing::warn!(param = %name, file = %file.display(), "ignoring assignment to a readonly parameter");
            return Ok(());
        }
        if let Some(locked) = self.protected.get(&name) {
            if *locked != assignment.value {
                tracing::error!(param = %name, file = %file.display(), "attempt to change protected parameter ignored");
            }
            return Ok(());
        }
        if assignment.readonly {
            self.readonly.insert(name.clone(), ());
        }
        let origin = Origin { file: file.to_path_buf(), line: assignment.line };
        self.params.params.insert(name, Param { value: assignment.value, origin });
        Ok(())
    }

    fn unset(&mut self, name: &str) {
        if !self.readonly.contains_key(name) && !self.protected.contains_key(name) {
            self.params.params.remove(name);
        }
    }
}

#[cfg(test)]
mod tests;
