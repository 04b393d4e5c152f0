//! `mount.cvmfs` (what `mount -t cvmfs` runs) and `auto.cvmfs` (the autofs program map),
//! as upstream (spec 8.5).

use std::path::{Path, PathBuf};
use std::process::Command;

use cvmfs_client::config::{self, ClientConfig, ConfigSource};
use cvmfs_client::talk;

/// `mount.cvmfs` exit codes.
pub const HELPER_OK: i32 = 0;
pub const HELPER_PRECHECK: i32 = 1;
pub const HELPER_MOUNT_FAILED: i32 = 32;

/// Whether `key` is a plausible fully qualified repository name (autofs map rule).
pub fn plausible_fqrn(key: &str) -> bool {
    let first_ok = key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    first_ok && chars_ok && key.contains('.') && !key.ends_with('.')
}

/// The autofs map answer for `key`, `None` = no such mount.
pub fn autofs_entry(key: &str) -> Option<String> {
    plausible_fqrn(key).then(|| format!("-fstype=cvmfs :{key}"))
}

/// A parsed `mount.cvmfs <device> <mountpoint> [-o opts] [-f] [-n] [-v]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelperArgs {
    pub device: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    pub dry_run: bool,
    pub verbose: bool,
}

pub fn parse_helper_args(args: &[String]) -> Option<HelperArgs> {
    let mut out = HelperArgs::default();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" => out.options.extend(iter.next()?.split(',').filter(|o| !o.is_empty()).map(str::to_string)),
            "-f" => out.dry_run = true,
            "-v" => out.verbose = true,
            "-n" | "-s" => {}
            "-h" => return None,
            _ => positional.push(arg.clone()),
        }
    }
    let [device, mountpoint] = positional.as_slice() else { return None };
    out.device = device.clone();
    out.mountpoint = PathBuf::from(mountpoint);
    Some(out)
}

/// The repository name from the device: its last path component, with
/// `CVMFS_DEFAULT_DOMAIN` appended when it has no dot.
pub fn fqrn_of(device: &str, default_domain: Option<&str>) -> Option<String> {
    let name = device.trim_end_matches('/').rsplit('/').next()?.to_string();
    let fqrn = match (name.contains('.'), default_domain) {
        (true, _) => name,
        (false, Some(domain)) => format!("{name}.{domain}"),
        (false, None) => return None,
    };
    plausible_fqrn(&fqrn).then_some(fqrn)
}

/// Runs the helper; returns the exit code and prints what upstream prints.
pub fn run_mount_helper(args: &HelperArgs, cvmfs2: &Path) -> i32 {
    let global = config::load(&ConfigSource::from_environment(None)).unwrap_or_default();
    let Some(fqrn) = fqrn_of(&args.device, global.get("CVMFS_DEFAULT_DOMAIN")) else {
        eprintln!("Invalid repository name: {}", args.device);
        return HELPER_PRECHECK;
    };
    let params = match config::load(&ConfigSource::from_environment(Some(&fqrn))) {
        Ok(params) => params,
        Err(e) => {
            eprintln!("Failed to read the configuration of {fqrn}: {e}");
            return HELPER_PRECHECK;
        }
    };
    let config = match ClientConfig::from_parameters(&fqrn, &params) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return HELPER_PRECHECK;
        }
    };
    if let Some(code) = prechecks(&config, &fqrn, args) {
        return code;
    }
    let mut options = args.options.clone();
    options.retain(|o| o != "remount");
    options.extend(["fsname=cvmfs2".to_string(), "allow_other".to_string(), "grab_mountpoint".to_string()]);
    let mut command = Command::new(cvmfs2);
    command.arg("-o").arg(options.join(",")).arg(&fqrn).arg(&args.mountpoint);
    if args.dry_run || args.verbose {
        println!("{command:?}");
    }
    if args.dry_run {
        return HELPER_OK;
    }
    match command.status() {
        Ok(status) if status.success() => HELPER_OK,
        Ok(_) => HELPER_MOUNT_FAILED,
        Err(e) => {
            eprintln!("Failed to start {}: {e}", cvmfs2.display());
            HELPER_MOUNT_FAILED
        }
    }
}

/// `/dev/fuse`, the cache directory, and the double-mount check.
fn prechecks(config: &ClientConfig, fqrn: &str, args: &HelperArgs) -> Option<i32> {
    if !args.dry_run && !Path::new("/dev/fuse").exists() {
        eprintln!("Fuse not loaded");
        return Some(HELPER_PRECHECK);
    }
    let workspace = config.effective_workspace();
    if let Err(e) = std::fs::create_dir_all(&workspace) {
        eprintln!("Failed to create {}: {e}", workspace.display());
        return Some(HELPER_PRECHECK);
    }
    let socket = config.talk_socket.clone().unwrap_or_else(|| talk::socket_path(&workspace, fqrn));
    let remount = args.options.iter().any(|o| o == "remount");
    match talk::send(&socket, "mountpoint") {
        Ok(answer) => {
            let mounted_on = answer.trim_end();
            if remount && Path::new(mounted_on) == args.mountpoint {
                return Some(HELPER_OK);
            }
            eprintln!("Repository {fqrn} is already mounted on {mounted_on}");
            Some(HELPER_PRECHECK)
        }
        Err(_) if remount => {
            eprintln!("Repository {fqrn} is not mounted on {}", args.mountpoint.display());
            Some(HELPER_PRECHECK)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autofs_keys() {
        assert_eq!(autofs_entry("atlas.cern.ch").as_deref(), Some("-fstype=cvmfs :atlas.cern.ch"));
        for bad in ["atlas", ".atlas.cern.ch", "atlas.cern.ch.", "at las.cern.ch", "", "a/b.c"] {
            assert_eq!(autofs_entry(bad), None, "{bad}");
        }
    }

    #[test]
    fn helper_arguments_and_names() {
        let args: Vec<String> = ["/cvmfs/atlas", "/cvmfs/atlas.cern.ch", "-o", "ro,nodev", "-f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = parse_helper_args(&args).unwrap();
        assert_eq!(parsed.options, vec!["ro", "nodev"]);
        assert!(parsed.dry_run);
        assert_eq!(fqrn_of(&parsed.device, Some("cern.ch")).as_deref(), Some("atlas.cern.ch"));
        assert_eq!(fqrn_of("atlas", None), None);
        assert_eq!(fqrn_of("sft.cern.ch", None).as_deref(), Some("sft.cern.ch"));
        assert!(parse_helper_args(&args[..1]).is_none());
    }
}
