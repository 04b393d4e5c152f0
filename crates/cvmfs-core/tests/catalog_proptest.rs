//! Property tests: xattr blobs round-trip, variant expansion against a reference
//! model, and path validation.

use cvmfs_core::path::{validate_name, RepoPath};
use cvmfs_core::variant::expand;
use cvmfs_core::xattr::XattrList;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 1..=255)
}

proptest! {
    #[test]
    fn xattr_lists_round_trip(entries in proptest::collection::vec((key(), proptest::collection::vec(any::<u8>(), 0..=255)), 0..40)) {
        let mut list = XattrList::new();
        for (k, v) in &entries {
            list.set(k, v).unwrap();
        }
        let blob = list.serialize();
        prop_assert_eq!(XattrList::parse(&blob).unwrap(), list.clone());
        // Keys are serialized in byte order.
        let keys: Vec<Vec<u8>> = list.iter().map(|(k, _)| k.to_vec()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }

    #[test]
    fn xattr_parse_never_panics(blob in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(list) = XattrList::parse(&blob) {
            let again = XattrList::parse(&list.serialize()).unwrap();
            prop_assert_eq!(again, list);
        }
    }

    #[test]
    fn variant_expansion_matches_model(raw in "[a-z$():\\-/]{0,24}", defined in any::<bool>()) {
        let vars: Vec<(&[u8], &[u8])> = if defined { vec![(b"a", b"X"), (b"b", b"")] } else { vec![] };
        let lookup = |name: &[u8]| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let ours = expand(raw.as_bytes(), lookup).into_owned();
        prop_assert_eq!(ours, model(raw.as_bytes(), &lookup));
    }

    #[test]
    fn text_without_references_is_unchanged(raw in "[^$]{0,40}") {
        let out = expand(raw.as_bytes(), |_: &[u8]| Some(b"never".to_vec()));
        prop_assert_eq!(&*out, raw.as_bytes());
    }

    #[test]
    fn valid_paths_round_trip(names in proptest::collection::vec("[^/\\x00]{1,12}", 0..6)) {
        prop_assume!(names.iter().all(|n| n != "." && n != ".."));
        let text: String = names.iter().map(|n| format!("/{n}")).collect();
        let p = RepoPath::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(p.as_bytes(), text.as_bytes());
        prop_assert_eq!(p.depth(), names.len());
        prop_assert_eq!(p.components().count(), names.len());
        let rebuilt = names.iter().try_fold(RepoPath::root(), |acc, n| acc.join(n.as_bytes())).unwrap();
        prop_assert_eq!(&rebuilt, &p);
        if let Some(parent) = p.parent() {
            prop_assert!(p.starts_with(&parent));
            prop_assert_eq!(parent.join(p.file_name().unwrap()).unwrap(), p.clone());
        }
    }

    #[test]
    fn parsed_paths_contain_no_bad_names(bytes in proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'.'), Just(0u8), Just(b'a')], 0..12)) {
        if let Ok(p) = RepoPath::parse(&bytes) {
            for name in p.components() {
                prop_assert!(validate_name(name).is_ok());
                prop_assert!(name != b"." && name != b".." && !name.is_empty());
                prop_assert!(!name.contains(&0) && !name.contains(&b'/'));
            }
        }
        if let Ok(p) = RepoPath::normalize(&bytes) {
            prop_assert!(RepoPath::parse(p.as_bytes()).is_ok());
        }
    }
}

/// A direct transcription of upstream's pointer loop, as an independent model.
fn model(raw: &[u8], lookup: &dyn Fn(&[u8]) -> Option<&'static [u8]>) -> Vec<u8> {
    if !raw.contains(&b'$') {
        return raw.to_vec();
    }
    let end = raw.len();
    let mut out = Vec::new();
    let mut c = 0usize;
    while c < end {
        if raw[c] == b'$' && end >= 2 && c < end - 2 && raw[c + 1] == b'(' {
            c += 2;
            match (c..end).find(|&i| raw[i] == b')') {
                None => {
                    out.extend_from_slice(b"$(");
                    out.push(raw[c]);
                }
                Some(rpar) => {
                    let mut sep = c;
                    let mut default_start = rpar;
                    while sep != rpar {
                        if raw[sep] == b':' && raw[sep + 1] == b'-' {
                            default_start = sep + 2;
                            break;
                        }
                        sep += 1;
                    }
                    let name = &raw[c..sep];
                    match if name.is_empty() { None } else { lookup(name) } {
                        Some(v) => out.extend_from_slice(v),
                        None => out.extend_from_slice(&raw[default_start..rpar]),
                    }
                    c = rpar;
                }
            }
        } else {
            out.push(raw[c]);
        }
        c += 1;
    }
    out
}
