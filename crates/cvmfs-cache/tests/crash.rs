//! Crash safety: a helper process inserting, reading, pinning, evicting and cleaning
//! up is killed with SIGKILL at random moments, 30 times. After each kill a new
//! handle must find only objects that verify by hash, a database that matches the
//! directory, and no temporary files.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::Duration;

use common::{assert_consistent, content, id_of, open_cache, spawn_helper, wait_bounded, Rng};

const HELPER_DIR: &str = "CVMFS_CACHE_CRASH_HELPER_DIR";
const HELPER_SEED: &str = "CVMFS_CACHE_CRASH_HELPER_SEED";
const LIMIT: u64 = 256 * 1024;
const KILLS: u64 = 30;
const READY: &str = "CRASH-HELPER-READY";

/// The helper's body; an ordinary (empty) test unless started by `killed_writers_never_leave_bad_state`.
#[test]
fn crash_helper() {
    let (Some(dir), Some(seed)) = (std::env::var_os(HELPER_DIR), std::env::var(HELPER_SEED).ok()) else {
        return;
    };
    let cache = open_cache(std::path::Path::new(&dir), LIMIT);
    // On a line of its own: the harness has printed "test crash_helper ... " before.
    println!("\n{READY}");
    std::io::stdout().flush().unwrap();
    let mut rng = Rng(seed.parse::<u64>().unwrap() | 1);
    // Runs until killed; the bound only matters if the parent vanished.
    for _ in 0..1_000_000 {
        let n = rng.below(400);
        let bytes = content(n);
        let id = id_of(&bytes);
        match rng.below(10) {
            0..=4 => {
                let mut txn = cache.start_txn(id, Some(bytes.len() as u64)).unwrap();
                txn.write_all(&bytes).unwrap();
                if rng.below(5) == 0 {
                    txn.commit_pinned().unwrap();
                    cache.unpin(&id);
                } else {
                    txn.commit().unwrap();
                }
            }
            5..=6 => {
                if let Some(object) = cache.open(&id).unwrap() {
                    assert_eq!(object.read_to_vec().unwrap(), bytes);
                }
            }
            7 => {
                cache.evict(&id).unwrap();
            }
            8 => {
                cache.cleanup(rng.below(LIMIT)).unwrap();
            }
            _ => {
                if cache.pin(&id).unwrap_or(false) {
                    cache.unpin(&id);
                }
            }
        }
    }
}

#[test]
fn killed_writers_never_leave_bad_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let mut rng = Rng(0x5eed_cafe);
    let mut repaired_rounds = 0;
    let mut fixed = cvmfs_cache::RepairReport::default();
    for round in 0..KILLS {
        let mut child = spawn_helper(
            "crash_helper",
            &[(HELPER_DIR, dir.display().to_string()), (HELPER_SEED, (round * 7919 + 1).to_string())],
        );
        // Half the rounds kill while the helper is still starting up (possibly while
        // it repairs the previous crash), half while it is busy.
        if round % 2 == 1 {
            wait_until_ready(&mut child);
        }
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = wait_bounded(&mut child, Duration::from_secs(30), "killed helper");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: the helper failed on its own");

        let cache = open_cache(&dir, LIMIT);
        let repaired = cache.startup_repair().unwrap_or_default();
        fixed.added += repaired.added;
        fixed.removed += repaired.removed;
        let leftover = cache.repair().unwrap();
        assert_eq!(
            leftover,
            Default::default(),
            "round {round}: opening must already have repaired everything"
        );
        let objects = assert_consistent(&cache);
        assert!(cache.size().unwrap() <= LIMIT);
        if objects > 0 {
            repaired_rounds += 1;
        }
    }
    eprintln!(
        "{KILLS} kills: {repaired_rounds} rounds left objects; repairs added {} rows, removed {}",
        fixed.added, fixed.removed
    );
    assert!(repaired_rounds > KILLS / 4, "the helper rarely got to insert anything: {repaired_rounds}");
}

/// Waits (bounded) for the helper's "ready" line.
fn wait_until_ready(child: &mut std::process::Child) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.any(|l| l.map(|l| l.trim() == READY).unwrap_or(false));
        let _ = tx.send(ready);
        for _ in lines {} // keep draining so the helper never blocks on a full pipe
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true), "helper did not start");
}
