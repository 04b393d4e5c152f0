//! Table tests of the file hierarchy, overrides, protection, templates and typing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::typed::{parse_iso_utc, ClientConfig, RootSelection, XattrVisibility};
use super::*;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        Tree { dir }
    }

    fn source(&self, fqrn: Option<&str>) -> ConfigSource {
        ConfigSource {
            root: self.dir.path().to_path_buf(),
            fqrn: fqrn.map(str::to_string),
            explicit_files: None,
            environment: BTreeMap::from([("HOME".to_string(), "/home/u".to_string())]),
            mount_dir: Some(self.dir.path().join("cvmfs")),
        }
    }

    fn load(&self, fqrn: &str) -> Parameters {
        load(&self.source(Some(fqrn))).unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// One file per step of the hierarchy, each overriding the value `V` and recording
/// its own marker, so the winner and the order are both visible.
fn full_hierarchy() -> Tree {
    Tree::new(&[
        ("etc/cvmfs/default.conf", "V=default.conf\nCVMFS_CONFIG_REPOSITORY=cfg.example.org\nS1=a"),
        ("etc/cvmfs/default.d/50-b.conf", "V=50-b\nS2=$S1-b"),
        ("etc/cvmfs/default.d/10-a.conf", "V=10-a\nS1=first"),
        ("etc/cvmfs/default.d/ignored.txt", "V=ignored"),
        (
            "cvmfs/cfg.example.org/etc/cvmfs/default.conf",
            "V=cfgrepo-default\nCR=1\nCVMFS_CONFIG_REPOSITORY=other.org",
        ),
        ("etc/cvmfs/default.local", "V=default.local"),
        ("cvmfs/cfg.example.org/etc/cvmfs/domain.d/example.org.conf", "V=cfgrepo-domain"),
        ("etc/cvmfs/domain.d/example.org.conf", "V=domain.conf"),
        ("etc/cvmfs/domain.d/example.org.local", "V=domain.local"),
        ("cvmfs/cfg.example.org/etc/cvmfs/config.d/atlas.example.org.conf", "V=cfgrepo-config"),
        ("etc/cvmfs/config.d/atlas.example.org.conf", "V=config.conf"),
        ("etc/cvmfs/config.d/atlas.example.org.local", "V=config.local\nU=http://s1/cvmfs/@fqrn@/@org@"),
    ])
}

#[test]
fn later_files_override_earlier_ones_in_upstream_order() {
    let tree = full_hierarchy();
    // Remove files from the end one at a time: the winner walks back through the order.
    let order = [
        ("etc/cvmfs/config.d/atlas.example.org.local", "config.local"),
        ("etc/cvmfs/config.d/atlas.example.org.conf", "config.conf"),
        ("cvmfs/cfg.example.org/etc/cvmfs/config.d/atlas.example.org.conf", "cfgrepo-config"),
        ("etc/cvmfs/domain.d/example.org.local", "domain.local"),
        ("etc/cvmfs/domain.d/example.org.conf", "domain.conf"),
        ("cvmfs/cfg.example.org/etc/cvmfs/domain.d/example.org.conf", "cfgrepo-domain"),
        ("etc/cvmfs/default.local", "default.local"),
        ("cvmfs/cfg.example.org/etc/cvmfs/default.conf", "cfgrepo-default"),
        ("etc/cvmfs/default.d/50-b.conf", "50-b"),
        ("etc/cvmfs/default.d/10-a.conf", "10-a"),
        ("etc/cvmfs/default.conf", "default.conf"),
    ];
    for (file, expected) in order {
        let params = tree.load("atlas.example.org");
        assert_eq!(params.get("V"), Some(expected), "before removing {file}");
        assert_eq!(params.param("V").unwrap().origin.file, tree.path(file));
        std::fs::remove_file(tree.path(file)).unwrap();
    }
    assert_eq!(tree.load("atlas.example.org").get("V"), None);
}

#[test]
fn references_see_values_of_earlier_files_and_the_environment() {
    let tree = full_hierarchy();
    let params = tree.load("atlas.example.org");
    assert_eq!(params.get("S2"), Some("first-b"), "10-a.conf is read before 50-b.conf");
    let tree = Tree::new(&[("etc/cvmfs/default.local", "A=$HOME/x\nB=$CVMFS_FQRN")]);
    let params = tree.load("atlas.example.org");
    assert_eq!(params.get("A"), Some("/home/u/x"));
    assert_eq!(params.get("B"), Some("atlas.example.org"));
}

#[test]
fn templates_replace_fqrn_and_org_only() {
    let tree = full_hierarchy();
    let params = tree.load("atlas.example.org");
    assert_eq!(params.get("U"), Some("http://s1/cvmfs/atlas.example.org/atlas"));
    let tree = Tree::new(&[("etc/cvmfs/default.local", "M=abc@def.com\nN='@unknown@ @'")]);
    let params = tree.load("a.b.c");
    assert_eq!(params.get("M"), Some("abc@def.com"));
    assert_eq!(params.get("N"), Some("@unknown@ @"));
}

#[test]
fn config_repository_is_protected_after_default_d() {
    let tree = full_hierarchy();
    let params = tree.load("atlas.example.org");
    assert_eq!(params.get("CVMFS_CONFIG_REPOSITORY"), Some("cfg.example.org"));
    let tree = Tree::new(&[(
        "etc/cvmfs/default.conf",
        "CVMFS_CONFIG_REPOSITORY=cfg.example.org\nCVMFS_CONFIG_REPO_REQUIRED=yes",
    )]);
    let err = load(&tree.source(Some("atlas.example.org"))).unwrap_err();
    assert!(matches!(err, ConfigError::ConfigRepoMissing { .. }), "{err}");
}

#[test]
fn config_repository_is_not_read_for_itself_nor_without_fqrn() {
    let tree = full_hierarchy();
    assert_eq!(tree.load("atlas.example.org").get("CR"), Some("1"));
    let itself = tree.load("cfg.example.org");
    assert_eq!(itself.get("CR"), None);
    assert_eq!(itself.get("V"), Some("domain.local"));
    let global = load(&tree.source(None)).unwrap();
    assert_eq!(global.get("CR"), None);
    assert_eq!(global.get("V"), Some("default.local"));
}

#[test]
fn readonly_values_cannot_be_changed_later() {
    let tree = Tree::new(&[
        ("etc/cvmfs/default.conf", "readonly CVMFS_USER=cvmfs"),
        ("etc/cvmfs/default.local", "CVMFS_USER=root"),
    ]);
    assert_eq!(tree.load("a.b").get("CVMFS_USER"), Some("cvmfs"));
}

#[test]
fn explicit_files_replace_the_hierarchy() {
    let tree = full_hierarchy();
    std::fs::write(tree.path("a.conf"), "V=a\nW=1").unwrap();
    std::fs::write(tree.path("b.conf"), "V=b").unwrap();
    let mut source = tree.source(Some("atlas.example.org"));
    source.explicit_files = Some(vec![tree.path("a.conf"), tree.path("b.conf")]);
    let params = load(&source).unwrap();
    assert_eq!(params.get("V"), Some("b"));
    assert_eq!(params.get("W"), Some("1"));
    assert_eq!(params.get("S1"), None);
    source.explicit_files = Some(vec![tree.path("missing.conf")]);
    assert!(matches!(load(&source), Err(ConfigError::Read { .. })));
}

#[test]
fn syntax_errors_name_file_and_line() {
    let tree = Tree::new(&[("etc/cvmfs/default.local", "A=1\n\nB=$(uname -m)\n")]);
    let err = load(&tree.source(Some("a.b"))).unwrap_err().to_string();
    assert!(err.contains("default.local:3:"), "{err}");
}

#[test]
fn dump_is_sorted_and_shell_escaped() {
    let tree = Tree::new(&[("etc/cvmfs/default.local", "B='p1;p2'\nA=plain/value:1.2,-_")]);
    let dump = tree.load("a.b").dump();
    let file = tree.path("etc/cvmfs/default.local");
    let expected = format!(
        "# CernVM-FS parameters:\nA=plain/value:1.2,-_    # from {f}\nB='p1;p2'    # from {f}\n",
        f = file.display()
    );
    assert_eq!(dump, expected);
    assert_eq!(shell_escape("it's"), "'it\\'s'");
}

fn typed(text: &str) -> Result<ClientConfig, ConfigError> {
    let tree = Tree::new(&[("etc/cvmfs/config.d/atlas.example.org.local", text)]);
    ClientConfig::from_parameters("atlas.example.org", &tree.load("atlas.example.org"))
}

#[test]
fn typed_defaults_are_upstreams_code_defaults() {
    let c = typed("").unwrap();
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.timeout_direct, Duration::from_secs(5));
    assert_eq!(c.low_speed_limit, 1024);
    assert_eq!(c.max_retries, 1);
    assert_eq!((c.backoff_init, c.backoff_max), (Duration::from_secs(2), Duration::from_secs(10)));
    assert_eq!(c.proxy_reset_after, Duration::ZERO);
    assert_eq!(c.quota_limit_mb, Some(1000));
    assert!(!c.shared_cache);
    assert_eq!(c.effective_cache_dir(), Path::new("/var/lib/cvmfs/atlas.example.org"));
    assert_eq!(c.kcache_timeout, Duration::from_secs(60));
    assert_eq!(c.root, RootSelection::Head);
    assert_eq!(c.xattr_visibility, XattrVisibility::RootOnly);
    assert_eq!(c.privileged_gids, vec![0]);
    assert!(c.auto_update);
}

#[test]
fn typed_values_parse() {
    let c = typed(concat!(
        "CVMFS_SERVER_URL='http://a/cvmfs/@fqrn@;http://b/cvmfs/@fqrn@'\n",
        "CVMFS_HTTP_PROXY='http://p1:3128|http://p2:3128;DIRECT'\n",
        "CVMFS_QUOTA_LIMIT=-1\nCVMFS_SHARED_CACHE=yes\nCVMFS_MAX_TTL=5\nCVMFS_KCACHE_TIMEOUT=-3\n",
        "CVMFS_REPOSITORY_DATE=2026-11-22T10:31:43Z\nCVMFS_HIDE_MAGIC_XATTRS=yes\n",
        "CVMFS_XATTR_PRIVILEGED_GIDS=10,0,20\nCVMFS_PUBLIC_KEY=/k/a.pub:/k/b.pub\n",
    ))
    .unwrap();
    assert_eq!(c.server_urls, ["http://a/cvmfs/atlas.example.org", "http://b/cvmfs/atlas.example.org"]);
    assert_eq!(c.http_proxy.as_deref(), Some("http://p1:3128|http://p2:3128;DIRECT"));
    assert_eq!(c.quota_limit_mb, None);
    assert_eq!(c.effective_cache_dir(), Path::new("/var/lib/cvmfs/shared"));
    assert_eq!(c.max_ttl, Some(Duration::from_secs(300)));
    assert_eq!(c.kcache_timeout, Duration::ZERO);
    assert_eq!(c.root, RootSelection::Date(1795343503));
    assert_eq!(c.xattr_visibility, XattrVisibility::Never);
    assert_eq!(c.privileged_gids, vec![0, 10, 20]);
    assert_eq!(c.public_keys, [PathBuf::from("/k/a.pub"), PathBuf::from("/k/b.pub")]);
}

#[test]
fn bad_values_name_file_line_and_parameter() {
    for (text, name, line) in [
        ("X=1\nCVMFS_TIMEOUT=fast", "CVMFS_TIMEOUT", 2),
        ("CVMFS_AUTO_UPDATE=maybe", "CVMFS_AUTO_UPDATE", 1),
        ("\n\nCVMFS_REPOSITORY_DATE=2026-11-22", "CVMFS_REPOSITORY_DATE", 3),
        ("CVMFS_ROOT_HASH=xyz", "CVMFS_ROOT_HASH", 1),
        ("CVMFS_MAGIC_XATTRS_VISIBILITY=some", "CVMFS_MAGIC_XATTRS_VISIBILITY", 1),
        ("CVMFS_QUOTA_LIMIT=lots", "CVMFS_QUOTA_LIMIT", 1),
    ] {
        match typed(text) {
            Err(ConfigError::BadValue { file, line: got, name: n, .. }) => {
                assert!(file.ends_with("config.d/atlas.example.org.local"), "{text}");
                assert_eq!((n.as_str(), got), (name, line), "{text}");
            }
            other => panic!("{text}: expected BadValue, got {other:?}"),
        }
    }
    assert!(matches!(typed("CVMFS_CACHE_DIR=/a\nCVMFS_CACHE_BASE=/b"), Err(ConfigError::Conflict { .. })));
}

#[test]
fn iso_dates() {
    assert_eq!(parse_iso_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_iso_utc("2026-11-22T10:31:44Z"), Some(1795343504));
    assert_eq!(parse_iso_utc("2026-11-22T10:31:44"), None);
    assert_eq!(parse_iso_utc("2026-13-22T10:31:44Z"), None);
    assert_eq!(parse_iso_utc("2026-1a-22T10:31:44Z"), None);
}
