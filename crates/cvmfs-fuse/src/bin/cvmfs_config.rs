//! `cvmfs_config <command>`: showconfig, probe, stat, status, umount, wipecache, reload.

use cvmfs_fuse::config_tool as tool;

fn usage() -> ! {
    eprintln!(
        "usage: cvmfs_config showconfig [-s] [<repo>] | probe [<repo>...] | stat [-v] [<repo>] | status | umount | wipecache | reload [<repo>]"
    );
    std::process::exit(1);
}

fn repositories(args: &[String]) -> Vec<String> {
    if args.is_empty() {
        tool::configured_repositories()
    } else {
        args.to_vec()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else { usage() };
    let rest: Vec<String> = args[1..].iter().filter(|a| !a.starts_with('-')).cloned().collect();
    let verbose = args.iter().any(|a| a == "-v");
    let mut ok = true;
    match command.as_str() {
        "showconfig" => {
            for repo in repositories(&rest) {
                match tool::showconfig(&repo) {
                    Ok(text) => print!("{text}"),
                    Err(e) => {
                        eprintln!("{repo}: {e}");
                        ok = false;
                    }
                }
            }
        }
        "probe" => {
            for repo in repositories(&rest) {
                let good = tool::probe(&repo);
                println!("Probing /cvmfs/{repo}... {}", if good { "OK" } else { "Failed!" });
                ok &= good;
            }
        }
        "stat" => {
            for repo in repositories(&rest) {
                match tool::stat(&repo, verbose) {
                    Ok(text) => print!("{text}"),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
        }
        "status" => print!("{}", tool::status()),
        "umount" => {
            let (text, good) = tool::umount_all();
            print!("{text}");
            ok = good;
        }
        "wipecache" => {
            let (text, good) = tool::wipecache(&repositories(&rest));
            print!("{text}");
            ok = good;
        }
        "reload" => {
            // No module hot-swapping: a reload re-checks the revision of each mount.
            for repo in repositories(&rest) {
                match tool::talk_to(&repo, "remount sync") {
                    Ok(answer) => print!("{repo}: {answer}"),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
        }
        _ => usage(),
    }
    std::process::exit(if ok { 0 } else { 1 });
}
