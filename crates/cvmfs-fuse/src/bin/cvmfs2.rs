//! `cvmfs2 [-o options] <repository> <mountpoint>`: mounts a CernVM-FS repository.

use cvmfs_fuse::daemon::{self, exit};
use cvmfs_fuse::options;

fn main() {
    // Installed as /sbin/mount.cvmfs or /etc/auto.cvmfs (symlinks), act as those.
    let argv0 = std::env::args().next().unwrap_or_default();
    match argv0.rsplit('/').next().unwrap_or_default() {
        "mount.cvmfs" => mount_helper(),
        "auto.cvmfs" => autofs_map(),
        _ => {}
    }
    let inv = match options::parse(std::env::args().skip(1)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(exit::OPTIONS);
        }
    };
    if inv.help {
        println!("usage: cvmfs2 [-h] [-V] [-s] [-f] [-d] [-k] [-o <options>] <repository> <mountpoint>");
        return;
    }
    if inv.version {
        println!("CernVM-FS version {}", cvmfs_client::xattr::VERSION);
        return;
    }
    // Logging needs the repository's configuration (syslog level, debug log file).
    let (syslog_level, debug_log) = match daemon::load_config(&inv) {
        Ok((config, _)) => (config.syslog_level, config.debug_log),
        Err(_) => (3, None),
    };
    cvmfs_fuse::logging::init(
        &inv.fqrn,
        inv.debug,
        inv.foreground || inv.parse_only,
        syslog_level,
        debug_log.as_deref(),
    );
    if inv.parse_only {
        match daemon::load_config(&inv) {
            Ok((_, params)) => print!("{}", params.dump()),
            Err(f) => {
                eprintln!("{}", f.message);
                std::process::exit(f.code);
            }
        }
        return;
    }
    let code = if inv.foreground {
        match daemon::serve(&inv, |status| {
            if status.is_ok() {
                println!("CernVM-FS: mounted cvmfs on {}", inv.mountpoint.display());
            }
        }) {
            Ok(()) => exit::OK,
            Err(f) => {
                eprintln!("{} ({})", f.message, f.code);
                f.code
            }
        }
    } else {
        daemon::daemonize_and_serve(&inv)
    };
    std::process::exit(code);
}

fn mount_helper() -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(parsed) = cvmfs_fuse::helper::parse_helper_args(&args) else {
        eprintln!("usage: mount.cvmfs <repository> <mountpoint> [-o options] [-f] [-n] [-v]");
        std::process::exit(cvmfs_fuse::helper::HELPER_PRECHECK);
    };
    let me = std::env::current_exe().unwrap_or_else(|_| "/usr/bin/cvmfs2".into());
    std::process::exit(cvmfs_fuse::helper::run_mount_helper(&parsed, &me));
}

fn autofs_map() -> ! {
    let key = std::env::args().nth(1).unwrap_or_default();
    match cvmfs_fuse::helper::autofs_entry(&key) {
        Some(entry) => {
            println!("{entry}");
            std::process::exit(0)
        }
        None => std::process::exit(1),
    }
}
