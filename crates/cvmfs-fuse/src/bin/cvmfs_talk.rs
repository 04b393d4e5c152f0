//! `cvmfs_talk [-i <instance> | -p <socket>] <command...>`: sends a command to the
//! control socket of running `cvmfs2` mounts and prints the answers.

use std::path::PathBuf;

use cvmfs_client::config::{self, ClientConfig, ConfigSource};
use cvmfs_client::talk;

fn usage() -> ! {
    eprintln!("usage: cvmfs_talk [-i <instance> | -p <socket path>] <command>");
    std::process::exit(1);
}

/// `<workspace>/cvmfs_io.<fqrn>` from the repository's configuration.
fn socket_of(instance: &str) -> Result<PathBuf, String> {
    let global = config::load(&ConfigSource::from_environment(None)).map_err(|e| e.to_string())?;
    let fqrn = if instance.contains('.') {
        instance.to_string()
    } else {
        format!("{instance}.{}", global.get("CVMFS_DEFAULT_DOMAIN").unwrap_or("cern.ch"))
    };
    let params = config::load(&ConfigSource::from_environment(Some(&fqrn))).map_err(|e| e.to_string())?;
    let config = ClientConfig::from_parameters(&fqrn, &params).map_err(|e| e.to_string())?;
    Ok(talk::socket_path(&config.effective_workspace(), &fqrn))
}

fn ask(socket: &std::path::Path, command: &str) -> bool {
    match talk::send(socket, command) {
        Ok(reply) => {
            print!("{reply}");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let workspace = socket.parent().map(|p| p.display().to_string()).unwrap_or_default();
            eprintln!("Seems like CernVM-FS is not running in {workspace} (not found: {})", socket.display());
            false
        }
        Err(e) => {
            eprintln!("Could not access {} ({} - {e})", socket.display(), e.raw_os_error().unwrap_or(0));
            false
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut target: Option<Result<PathBuf, String>> = None;
    if args.len() >= 2 && (args[0] == "-i" || args[0] == "-p") {
        let value = args[1].clone();
        target = Some(if args[0] == "-p" { Ok(PathBuf::from(value)) } else { socket_of(&value) });
        args.drain(..2);
    }
    if args.is_empty() {
        usage();
    }
    let command = args.join(" ");
    let ok = match target {
        Some(Ok(socket)) => ask(&socket, &command),
        Some(Err(e)) => {
            eprintln!("{e}");
            false
        }
        None => {
            let global = config::load(&ConfigSource::from_environment(None)).unwrap_or_default();
            let repos: Vec<String> = global
                .get("CVMFS_REPOSITORIES")
                .unwrap_or("")
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            if repos.is_empty() {
                eprintln!("Warning: CVMFS_REPOSITORIES is empty; name a repository with -i");
            }
            let mut all = true;
            for repo in repos {
                println!("{repo}:");
                all &= socket_of(&repo).map(|s| ask(&s, &command)).unwrap_or(false);
            }
            all
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}
