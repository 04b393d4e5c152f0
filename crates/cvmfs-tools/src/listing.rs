//! The long listing format of `cvmfs-inspect ls -l`: exactly the columns of the
//! fixtures' `expected-<tag>.tsv` (documented in `fixtures/README.md`), so a listing can
//! be compared with them byte for byte.
//!
//! One line per entry, tab-separated: path, type (`d` `f` `l`), mode (4 octal digits of
//! the permission bits; symlinks `0777`), size (0 for directories, raw target length for
//! symlinks), mtime (unix seconds), sha256 of the content (`-` unless a regular file),
//! symlink target as stored (`-` otherwise), user xattrs as `name=hexvalue` joined by `,`
//! and sorted by name (`-` if none), hardlink group (a small integer shared by the members
//! of one group, numbered in order of first appearance; `-` otherwise).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The kind column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File,
    Symlink,
    /// FIFOs, sockets and devices are listed with their own letter (`s`), which the
    /// fixtures never contain.
    Special,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Directory => 'd',
            Kind::File => 'f',
            Kind::Symlink => 'l',
            Kind::Special => 's',
        }
    }
}

/// One entry to print. `hardlink_key` identifies a hardlink group across the whole
/// listing (e.g. catalog identity + group number); the printed number is assigned here.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub kind: Kind,
    pub permissions: u32,
    pub size: u64,
    pub mtime: i64,
    pub sha256: Option<String>,
    pub symlink: Option<String>,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub hardlink_key: Option<(u64, u32)>,
}

/// Sorts rows by path bytes and renders them, numbering hardlink groups 1, 2, … in the
/// order their first member appears.
pub fn render(mut rows: Vec<Row>) -> String {
    rows.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut groups: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    let mut out = String::new();
    for row in &rows {
        let group = row.hardlink_key.map(|key| {
            let next = groups.len() + 1;
            *groups.entry(key).or_insert(next)
        });
        render_row(row, group, &mut out);
    }
    out
}

fn render_row(row: &Row, group: Option<usize>, out: &mut String) {
    let permissions = if row.kind == Kind::Symlink { 0o777 } else { row.permissions & 0o7777 };
    let size = if row.kind == Kind::Directory { 0 } else { row.size };
    let _ = writeln!(
        out,
        "{}\t{}\t{:04o}\t{}\t{}\t{}\t{}\t{}\t{}",
        row.path,
        row.kind.letter(),
        permissions,
        size,
        row.mtime,
        row.sha256.as_deref().unwrap_or("-"),
        row.symlink.as_deref().unwrap_or("-"),
        render_xattrs(&row.xattrs),
        group.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
    );
}

/// `user.*` attributes only (the fixtures list no others), sorted by name.
fn render_xattrs(xattrs: &[(String, Vec<u8>)]) -> String {
    let mut user: Vec<&(String, Vec<u8>)> =
        xattrs.iter().filter(|(name, _)| name.starts_with("user.")).collect();
    if user.is_empty() {
        return "-".into();
    }
    user.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let parts: Vec<String> = user.iter().map(|(name, value)| format!("{name}={}", hex(value))).collect();
    parts.join(",")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, kind: Kind) -> Row {
        Row {
            path: path.into(),
            kind,
            permissions: 0o644,
            size: 5,
            mtime: 1,
            sha256: None,
            symlink: None,
            xattrs: Vec::new(),
            hardlink_key: None,
        }
    }

    #[test]
    fn renders_fixture_columns() {
        let mut dir = row("/attrs/dir", Kind::Directory);
        dir.permissions = 0o40755;
        dir.size = 4096;
        dir.xattrs = vec![
            ("user.b".into(), b"2".to_vec()),
            ("user.a".into(), Vec::new()),
            ("trusted.x".into(), vec![1]),
        ];
        let mut link = row("/sym", Kind::Symlink);
        link.symlink = Some("$(ARCH)/x".into());
        let mut a = row("/hl_b", Kind::File);
        a.hardlink_key = Some((7, 3));
        a.sha256 = Some("ab".into());
        let mut b = row("/hl_a", Kind::File);
        b.hardlink_key = Some((7, 3));
        let mut c = row("/z", Kind::File);
        c.hardlink_key = Some((8, 3));
        let text = render(vec![link, dir, a, b, c]);
        assert_eq!(
            text,
            "/attrs/dir\td\t0755\t0\t1\t-\t-\tuser.a=,user.b=32\t-\n\
             /hl_a\tf\t0644\t5\t1\t-\t-\t-\t1\n\
             /hl_b\tf\t0644\t5\t1\tab\t-\t-\t1\n\
             /sym\tl\t0777\t5\t1\t-\t$(ARCH)/x\t-\t-\n\
             /z\tf\t0644\t5\t1\t-\t-\t-\t2\n"
        );
    }
}
