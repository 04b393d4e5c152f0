//! Variant symlinks (spec 8, upstream `SqlDirent::ExpandSymlink`): `$(VAR)` and
//! `$(VAR:-default)` in a raw symlink target are replaced by a variable's value.
//!
//! The variables come from a caller-supplied lookup (the client exports its
//! configuration into it), never from the process environment directly, so the
//! expansion is a pure function and testable.
//!
//! The algorithm is byte-for-byte upstream's, including its oddities: no nesting, no
//! escaping, no rescanning of substituted values, unterminated references stay literal,
//! a variable that is defined but empty wins over the default, and `$(` needs at least
//! one byte after it to count as a reference. The empty name is never defined (upstream
//! calls `getenv("")`, which is always unset), so the lookup is not asked for it.
//!
//! What it is not for: raw targets (`user.rawlink`, cache-server mode) must not be
//! expanded; that choice is the caller's.

use std::borrow::Cow;

/// Whether `raw` contains anything that could expand.
pub fn needs_expansion(raw: &[u8]) -> bool {
    raw.contains(&b'$')
}

/// Expands `raw` with `lookup` (variable name -> value if defined). Returns `raw`
/// unchanged (borrowed) when it contains no `$`.
pub fn expand<'a, F, V>(raw: &'a [u8], mut lookup: F) -> Cow<'a, [u8]>
where
    F: FnMut(&[u8]) -> Option<V>,
    V: AsRef<[u8]>,
{
    if !needs_expansion(raw) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        if starts_reference(raw, i) {
            i = expand_reference(raw, i + 2, &mut out, &mut lookup);
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Expands with the variables of a key/value list (convenience for tests and tools).
pub fn expand_with<'a>(raw: &'a [u8], vars: &[(&[u8], &[u8])]) -> Cow<'a, [u8]> {
    expand(raw, |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
}

/// `$(` at an index at most `len - 3` (upstream: `c < cEnd - 2`).
fn starts_reference(raw: &[u8], i: usize) -> bool {
    i + 2 < raw.len() && raw.get(i) == Some(&b'$') && raw.get(i + 1) == Some(&b'(')
}

/// Handles the reference whose inner text starts at `start`; returns where to continue.
fn expand_reference<F, V>(raw: &[u8], start: usize, out: &mut Vec<u8>, lookup: &mut F) -> usize
where
    F: FnMut(&[u8]) -> Option<V>,
    V: AsRef<[u8]>,
{
    let tail = raw.get(start..).unwrap_or_default();
    let Some(close) = tail.iter().position(|&b| b == b')') else {
        // Unterminated: upstream emits "$(" and the next byte, then goes on literally.
        out.extend_from_slice(b"$(");
        out.extend(tail.first());
        return start + 1;
    };
    let inner = tail.get(..close).unwrap_or_default();
    let (name, default) = split_default(inner);
    let value = if name.is_empty() { None } else { lookup(name) };
    match value {
        Some(value) => out.extend_from_slice(value.as_ref()),
        None => out.extend_from_slice(default),
    }
    start + close + 1
}

/// Splits `NAME:-DEFAULT` at the first `:-`; no separator means an empty default.
fn split_default(inner: &[u8]) -> (&[u8], &[u8]) {
    match inner.windows(2).position(|w| w == b":-") {
        Some(at) => (inner.get(..at).unwrap_or_default(), inner.get(at + 2..).unwrap_or_default()),
        None => (inner, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &str) -> String {
        let vars: [(&[u8], &[u8]); 2] = [(b"A", b"x"), (b"EMPTY", b"")];
        String::from_utf8(expand_with(raw.as_bytes(), &vars).into_owned()).unwrap()
    }

    #[test]
    fn spec_12_10_vectors() {
        assert_eq!(run("$(A)"), "x");
        assert_eq!(run("$(B)"), "");
        assert_eq!(run("$(B:-/d)"), "/d");
        assert_eq!(run("$(A:-/d)"), "x");
        assert_eq!(run("pre$(A)post"), "prexpost");
        assert_eq!(run("$(A"), "$(A");
        assert_eq!(run("$(B:-$(A))"), "$(A)");
        assert_eq!(run("$()"), "");
        assert_eq!(run("a$"), "a$");
        assert_eq!(run("ab$("), "ab$(");
        assert_eq!(run("$(EMPTY:-d)"), "");
        assert_eq!(run("$(:-d)"), "d");
        assert_eq!(run("$(A)$(A)/$"), "xx/$");
        assert_eq!(run("$$(A)"), "$x");
    }

    #[test]
    fn no_dollar_borrows() {
        assert!(matches!(expand_with(b"plain/target", &[]), Cow::Borrowed(_)));
    }

    #[test]
    fn fixture_variants() {
        let arch: [(&[u8], &[u8]); 1] = [(b"TEST_ARCH", b"arch_ppc64le")];
        assert_eq!(&*expand_with(b"$(TEST_ARCH)/file.txt", &arch), b"arch_ppc64le/file.txt");
        assert_eq!(&*expand_with(b"$(TEST_ARCH)/file.txt", &[]), b"/file.txt");
        assert_eq!(
            &*expand_with(b"$(TEST_ARCH:-default_variant)/file.txt", &[]),
            b"default_variant/file.txt"
        );
    }
}
