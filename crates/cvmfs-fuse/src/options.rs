//! The `cvmfs2` command line, as upstream's loader reads it:
//! `cvmfs2 [-h] [-V] [-s] [-f] [-d] [-k] [-o <options>] <repository> <mountpoint>`.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("usage: cvmfs2 [-h] [-V] [-s] [-f] [-d] [-k] [-o <options>] <repository> <mountpoint>")]
    Usage,
    #[error("option -o needs a value")]
    MissingValue,
    #[error("invalid value in -o {0}")]
    BadValue(String),
    #[error("unknown switch {0}")]
    UnknownSwitch(String),
}

/// What a `cvmfs2` invocation asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub help: bool,
    pub version: bool,
    pub fqrn: String,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub debug: bool,
    pub single_threaded: bool,
    /// `-k` / `-o parse`: print the parameters and exit.
    pub parse_only: bool,
    /// `-o config=a:b`.
    pub config_files: Option<Vec<PathBuf>>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub system_mount: bool,
    pub grab_mountpoint: bool,
    /// Options passed on to FUSE (`allow_other`, `fsname=...`, ...).
    pub fuse_options: Vec<String>,
}

/// Options the loader accepts and ignores (fstab and mount(8) noise).
const IGNORED: &[&str] = &[
    "_netdev",
    "user",
    "nouser",
    "users",
    "auto",
    "noauto",
    "ro",
    "nodev",
    "nosuid",
    "cvmfs_suid",
    "disable_watchdog",
    "simple_options_parsing",
    "system_mount",
];

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, OptionsError> {
    let mut inv = Invocation::default();
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => inv.help = true,
            "-V" | "--version" => inv.version = true,
            "-f" => inv.foreground = true,
            "-d" => {
                inv.debug = true;
                inv.foreground = true;
            }
            "-s" => inv.single_threaded = true,
            "-k" => inv.parse_only = true,
            "-o" => {
                let value = args.next().ok_or(OptionsError::MissingValue)?;
                apply_options(&mut inv, &value)?;
            }
            other if other.starts_with("-o") => apply_options(&mut inv, &other[2..])?,
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(OptionsError::UnknownSwitch(other.to_string()))
            }
            _ => positional.push(arg),
        }
    }
    if inv.help || inv.version {
        return Ok(inv);
    }
    match positional.as_slice() {
        [fqrn, mountpoint] => {
            inv.fqrn = fqrn.clone();
            inv.mountpoint = PathBuf::from(mountpoint);
        }
        [fqrn] if inv.parse_only => inv.fqrn = fqrn.clone(),
        _ => return Err(OptionsError::Usage),
    }
    Ok(inv)
}

fn apply_options(inv: &mut Invocation, list: &str) -> Result<(), OptionsError> {
    for option in list.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = option.split_once('=').map_or((option, None), |(k, v)| (k, Some(v)));
        let number = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| OptionsError::BadValue(option.to_string()))
        };
        match key {
            "config" => {
                let files = value.ok_or_else(|| OptionsError::BadValue(option.to_string()))?;
                inv.config_files =
                    Some(files.split(':').filter(|f| !f.is_empty()).map(PathBuf::from).collect());
            }
            "uid" => inv.uid = Some(number(value)?),
            "gid" => inv.gid = Some(number(value)?),
            "foreground" => inv.foreground = true,
            "debug" | "fuse_debug" => {
                inv.debug = true;
                inv.foreground = true;
            }
            "parse" => inv.parse_only = true,
            "grab_mountpoint" => inv.grab_mountpoint = true,
            "system_mount" => inv.system_mount = true,
            "libfuse" => {}
            k if IGNORED.contains(&k) => {}
            _ => inv.fuse_options.push(option.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn upstream_style_invocations() {
        let inv = parse(args(&[
            "-o",
            "config=/a.conf:/b.conf,allow_other,fsname=cvmfs2,uid=5,_netdev",
            "-f",
            "x.cern.ch",
            "/cvmfs/x.cern.ch",
        ]))
        .unwrap();
        assert_eq!(inv.fqrn, "x.cern.ch");
        assert_eq!(inv.mountpoint, PathBuf::from("/cvmfs/x.cern.ch"));
        assert_eq!(inv.config_files, Some(vec![PathBuf::from("/a.conf"), PathBuf::from("/b.conf")]));
        assert_eq!(inv.fuse_options, vec!["allow_other", "fsname=cvmfs2"]);
        assert_eq!(inv.uid, Some(5));
        assert!(inv.foreground);
        assert!(parse(args(&["-V"])).unwrap().version);
        assert_eq!(parse(args(&["only-one"])), Err(OptionsError::Usage));
        assert_eq!(parse(args(&["-o", "uid=x", "a", "b"])), Err(OptionsError::BadValue("uid=x".into())));
        assert!(parse(args(&["-k", "x.cern.ch"])).unwrap().parse_only);
        assert_eq!(parse(args(&["-x", "a", "b"])), Err(OptionsError::UnknownSwitch("-x".into())));
    }
}
