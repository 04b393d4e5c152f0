//! The repository whitelist `.cvmfswhitelist`: which publisher certificates the master
//! key currently vouches for, and until when.
//!
//! What it does: parses and checks it as upstream's `ParseWhitelist` (expiry at hour
//! granularity against a caller-supplied `now`, repository name, fingerprints; lines
//! that are no fingerprint are skipped), verifies the master-key signature
//! ([`Whitelist::verify`]) and writes the letter a publisher signs
//! ([`Whitelist::export`]).
//!
//! What it is not for: PKCS#7 (`Vpkcs7`) and CA-chain (`Wcachain`) whitelists. Upstream
//! verifies those against an X.509 store it never fills, so they cannot succeed there
//! either; we refuse them with [`WhitelistError::Unsupported`] rather than pretend.
//! No network I/O: the caller fetches the bytes.

use std::fmt;

use thiserror::Error;

use crate::certificate::Certificate;
use crate::hash::ContentHash;
use crate::letter::{LetterError, SignedLetter};
use crate::signature::KeyRing;

const SECONDS_PER_DAY: i64 = 86_400;

/// Why a whitelist is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WhitelistError {
    #[error("whitelist is malformed: {0}; the server's .cvmfswhitelist is damaged or not a whitelist")]
    Malformed(String),
    #[error(
        "whitelist expired at {expiry} (UTC, hour granularity); the repository maintainer must re-sign it \
         (cvmfs_server resign), or the local clock is wrong"
    )]
    Expired { expiry: ExpiryHour },
    #[error("whitelist is for repository '{found}', not '{expected}': wrong server URL or repository name")]
    NameMismatch { expected: String, found: String },
    #[error(
        "whitelist requires {mode} verification, which upstream cannot perform either (no trusted CA store); \
         the repository must publish a plain RSA-signed whitelist"
    )]
    Unsupported { mode: &'static str },
    #[error(
        "whitelist signature does not verify with any of the {keys} master public key(s) ({reason}); \
         check CVMFS_PUBLIC_KEY / CVMFS_KEYS_DIR holds this repository's key, or the whitelist was altered"
    )]
    BadSignature { keys: usize, reason: String },
}

/// The expiry as written on the `E` line, down to the hour (minutes and seconds are
/// ignored, as upstream ignores them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiryHour {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
}

impl ExpiryHour {
    /// Unix seconds at which the whitelist stops being valid (start of the expiry hour).
    /// A day beyond the month's end rolls over, as `timegm` normalises it.
    pub fn unix_start(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
    }

    /// True while `now` (unix seconds) lies strictly before the expiry hour.
    pub fn is_valid_at(&self, now: u64) -> bool {
        i128::from(now) < i128::from(self.unix_start())
    }
}

impl fmt::Display for ExpiryHour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02} {:02}:00", self.year, self.month, self.day, self.hour)
    }
}

/// A parsed, name- and expiry-checked whitelist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    /// The first line (creation time), kept verbatim; upstream does not interpret it.
    pub created: String,
    pub expiry: ExpiryHour,
    /// The `N` line without `N` (empty if the check was skipped for an empty fqrn and the
    /// line was missing).
    pub repository_name: String,
    /// The certificate fingerprints, in file order; unreadable lines are skipped.
    pub fingerprints: Vec<ContentHash>,
    /// `Vpkcs7` was present.
    pub pkcs7: bool,
    /// `Wcachain` was present.
    pub ca_chain: bool,
}

impl Whitelist {
    /// Parses and checks a whitelist as upstream does, in its order: line lengths
    /// (malformed), expiry against `now` (unix seconds), repository name (skipped when
    /// `fqrn` is empty), then `Vpkcs7`, `Wcachain` and fingerprints up to `--`.
    /// No signature check; see [`Whitelist::verify`].
    pub fn parse(raw: &[u8], fqrn: &str, now: u64) -> Result<Whitelist, WhitelistError> {
        let mut lines = Lines { rest: raw };
        let created = lines.next_line();
        if created.len() != 14 {
            return Err(WhitelistError::Malformed(format!(
                "first line (creation time) has {} characters instead of 14",
                created.len()
            )));
        }
        let expiry = parse_expiry_line(lines.next_line())?;
        if !expiry.is_valid_at(now) {
            return Err(WhitelistError::Expired { expiry });
        }
        let repository_name = check_name_line(lines.next_line(), fqrn)?;
        let pkcs7 = lines.next_if(b"Vpkcs7");
        let ca_chain = lines.next_if(b"Wcachain");
        let fingerprints = parse_fingerprints(&mut lines);
        Ok(Whitelist {
            created: String::from_utf8_lossy(created).into_owned(),
            expiry,
            repository_name,
            fingerprints,
            pkcs7,
            ca_chain,
        })
    }

    /// Parses, checks ([`Whitelist::parse`]) and verifies the master-key signature.
    /// `Vpkcs7` and `Wcachain` whitelists are refused as [`WhitelistError::Unsupported`].
    pub fn verify(raw: &[u8], fqrn: &str, now: u64, keys: &KeyRing) -> Result<Whitelist, WhitelistError> {
        let whitelist = Whitelist::parse(raw, fqrn, now)?;
        if whitelist.pkcs7 {
            return Err(WhitelistError::Unsupported { mode: "PKCS#7 (Vpkcs7)" });
        }
        if whitelist.ca_chain {
            return Err(WhitelistError::Unsupported { mode: "CA chain (Wcachain)" });
        }
        verify_signature(raw, keys)?;
        Ok(whitelist)
    }

    /// True if the certificate's fingerprint, under the fingerprint's own algorithm, is
    /// listed.
    pub fn lists(&self, certificate: &Certificate) -> bool {
        self.fingerprints.iter().any(|fp| certificate.fingerprint(fp.algorithm()) == *fp)
    }

    /// The letter upstream's `Whitelist::Create` writes, for a publisher to hash and sign
    /// (see [`crate::signature::sign_whitelist_hash_line`]): creation time, `E` expiry,
    /// `N` name, then one fingerprint line each.
    pub fn export(created: u64, expires: u64, fqrn: &str, fingerprints: &[ContentHash]) -> String {
        let mut out =
            format!("{}\nE{}\nN{fqrn}\n", whitelist_timestamp(created), whitelist_timestamp(expires));
        for fingerprint in fingerprints {
            out.push_str(&fingerprint.fingerprint());
            out.push('\n');
        }
        out
    }
}

/// Checks the hash line and the master-key signature of a whole whitelist file.
fn verify_signature(raw: &[u8], keys: &KeyRing) -> Result<(), WhitelistError> {
    let bad = |reason: String| WhitelistError::BadSignature { keys: keys.len(), reason };
    let letter = SignedLetter::split(raw).map_err(|e| bad(e.to_string()))?;
    letter.check_hash().map_err(|e: LetterError| bad(e.to_string()))?;
    if keys.is_empty() {
        return Err(bad("no master public key is loaded".into()));
    }
    match keys.verify_whitelist_signature(letter.hash_line, letter.signature) {
        Some(_) => Ok(()),
        None => Err(bad("no key recovers the hash line".into())),
    }
}

/// Reads lines like upstream's `GetLineMem`: up to `\n` or the end; past the end every
/// line is empty.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> &'a [u8] {
        let end = self.rest.iter().position(|&b| b == b'\n').unwrap_or(self.rest.len());
        let (line, tail) = self.rest.split_at(end);
        self.rest = tail.get(1..).unwrap_or_default();
        line
    }

    fn peek_line(&self) -> &'a [u8] {
        Lines { rest: self.rest }.next_line()
    }

    /// Consumes the next line if it equals `expected`.
    fn next_if(&mut self, expected: &[u8]) -> bool {
        let matches = self.peek_line() == expected;
        if matches {
            self.next_line();
        }
        matches
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

fn parse_expiry_line(line: &[u8]) -> Result<ExpiryHour, WhitelistError> {
    let malformed = |why: &str| WhitelistError::Malformed(format!("expiry line: {why}"));
    if line.len() != 15 {
        return Err(malformed(&format!("{} characters instead of 15 (E + YYYYMMDDhhmmss)", line.len())));
    }
    let field = |range: std::ops::Range<usize>| -> Result<u32, WhitelistError> {
        line.get(range)
            .and_then(crate::manifest::parse_decimal)
            .and_then(|value| u32::try_from(value).ok())
            .ok_or_else(|| malformed("date is not all digits"))
    };
    let expiry =
        ExpiryHour { year: field(1..5)?, month: field(5..7)?, day: field(7..9)?, hour: field(9..11)? };
    let in_range = (1..=12).contains(&expiry.month) && (1..=31).contains(&expiry.day) && expiry.hour <= 23;
    if !in_range {
        return Err(malformed("month, day or hour out of range"));
    }
    Ok(expiry)
}

/// The `N` line must be `N` + fqrn; upstream skips the check for an empty fqrn.
fn check_name_line(line: &[u8], fqrn: &str) -> Result<String, WhitelistError> {
    let found = String::from_utf8_lossy(line.strip_prefix(b"N").unwrap_or(line)).into_owned();
    let matches = line.strip_prefix(b"N") == Some(fqrn.as_bytes());
    if !fqrn.is_empty() && !matches {
        return Err(WhitelistError::NameMismatch { expected: fqrn.to_string(), found });
    }
    Ok(found)
}

fn parse_fingerprints(lines: &mut Lines<'_>) -> Vec<ContentHash> {
    let mut fingerprints = Vec::new();
    while !lines.is_empty() {
        let line = lines.next_line();
        if line == b"--" {
            break;
        }
        let parsed = std::str::from_utf8(line).ok().and_then(crate::letter::parse_fingerprint_line);
        // Upstream drops unreadable lines and the null hash alike.
        if let Some(hash) = parsed.filter(|h| !h.is_null()) {
            fingerprints.push(hash);
        }
    }
    fingerprints
}

/// `YYYYMMDDhhmmss` in UTC, as upstream's `WhitelistTimestamp` writes it.
pub fn whitelist_timestamp(unix: u64) -> String {
    let seconds = i64::try_from(unix).unwrap_or(i64::MAX);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm); `day`
/// may exceed the month's length and then rolls over.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number since 1970-01-01 (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small by construction (1..=31, 1..=12).
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The letter of the upstream legacy fixture (spec 12.4).
    const LEGACY_LETTER: &str = "20151021115513\nE20151120115513\nNlegacy_aufs.cern.ch\n\
        93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15\n";
    /// 2015-11-20 11:00:00 UTC, the start of the legacy whitelist's expiry hour.
    const LEGACY_EXPIRY: u64 = 1_448_017_200;

    #[test]
    fn legacy_letter_parses() {
        assert_eq!(LEGACY_LETTER.len(), 112);
        assert_eq!(
            ContentHash::of(crate::hash::Algorithm::Sha1, LEGACY_LETTER.as_bytes()).to_string(),
            "929b0716d322e6b740352c7e67da1058454cc4d2"
        );
        let wl =
            Whitelist::parse(LEGACY_LETTER.as_bytes(), "legacy_aufs.cern.ch", LEGACY_EXPIRY - 1).unwrap();
        assert_eq!(wl.expiry, ExpiryHour { year: 2015, month: 11, day: 20, hour: 11 });
        assert_eq!(wl.expiry.unix_start(), LEGACY_EXPIRY as i64);
        assert_eq!(wl.repository_name, "legacy_aufs.cern.ch");
        assert_eq!(wl.fingerprints.len(), 1);
        assert_eq!(wl.fingerprints[0].to_string(), "93aba3c489bef9b73e908f42c18aef12bb05c415");
        assert!(!wl.pkcs7 && !wl.ca_chain);
    }

    #[test]
    fn expiry_is_at_the_start_of_the_hour() {
        let at = |now| Whitelist::parse(LEGACY_LETTER.as_bytes(), "legacy_aufs.cern.ch", now);
        assert!(at(LEGACY_EXPIRY - 1).is_ok());
        let expired = at(LEGACY_EXPIRY).unwrap_err();
        assert_eq!(
            expired,
            WhitelistError::Expired { expiry: ExpiryHour { year: 2015, month: 11, day: 20, hour: 11 } }
        );
        assert!(expired.to_string().contains("2015-11-20 11:00"), "{expired}");
        // 11:55:13 is written, but 11:30 is already too late.
        assert!(at(LEGACY_EXPIRY + 1800).is_err());
    }

    #[test]
    fn upstream_t_whitelist_vectors() {
        let now = 1_700_000_000u64;
        let future = whitelist_timestamp(now + 2 * 3600);
        let parse = |text: &str| Whitelist::parse(text.as_bytes(), "abc", now);
        assert!(matches!(parse(""), Err(WhitelistError::Malformed(_))));
        assert!(matches!(parse("XXXXXXXXXXXXXX\n19840403000000"), Err(WhitelistError::Malformed(_))));
        assert!(matches!(parse("XXXXXXXXXXXXXX\nE19840403000000"), Err(WhitelistError::Expired { .. })));
        let no_name = format!("XXXXXXXXXXXXXX\nE{future}");
        assert_eq!(
            parse(&no_name),
            Err(WhitelistError::NameMismatch { expected: "abc".into(), found: String::new() })
        );
        let ok = parse(&format!("{no_name}\nNabc")).unwrap();
        assert!(ok.fingerprints.is_empty());
        // An empty fqrn skips the name check.
        assert!(Whitelist::parse(no_name.as_bytes(), "", now).is_ok());
    }

    #[test]
    fn optional_mode_lines_and_skipped_garbage() {
        let now = 1_700_000_000u64;
        let text = format!(
            "20230101000000\nE{}\nNabc\nVpkcs7\nWcachain\nnot a fingerprint\n{}  # comment\n{}\n--\nafter",
            whitelist_timestamp(now + 86_400),
            ContentHash::of(crate::hash::Algorithm::Rmd160, b"x").fingerprint(),
            "00:".repeat(19) + "00"
        );
        let wl = Whitelist::parse(text.as_bytes(), "abc", now).unwrap();
        assert!(wl.pkcs7 && wl.ca_chain);
        assert_eq!(wl.fingerprints, vec![ContentHash::of(crate::hash::Algorithm::Rmd160, b"x")]);
        let err = Whitelist::verify(text.as_bytes(), "abc", now, &KeyRing::new()).unwrap_err();
        assert_eq!(err, WhitelistError::Unsupported { mode: "PKCS#7 (Vpkcs7)" });
    }

    #[test]
    fn malformed_dates() {
        let now = 0;
        for expiry in [
            "E2015112x115513",
            "E20151120x15513",
            "E20151320115513",
            "E20151100115513",
            "E20151120245513",
            "E+0151120115513",
        ] {
            let text = format!("20151021115513\n{expiry}\nNabc\n");
            assert!(
                matches!(Whitelist::parse(text.as_bytes(), "abc", now), Err(WhitelistError::Malformed(_))),
                "{expiry}"
            );
        }
        // Minutes and seconds are not read at all.
        assert!(Whitelist::parse(b"20151021115513\nE2015112011xxyy\nNabc\n", "abc", now).is_ok());
    }

    #[test]
    fn civil_conversion_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2015, 2, 31), days_from_civil(2015, 3, 3));
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(whitelist_timestamp(0), "19700101000000");
        assert_eq!(whitelist_timestamp(1_445_428_513), "20151021115513");
        assert_eq!(whitelist_timestamp(1_826_875_904), "20271122093144");
    }

    #[test]
    fn export_writes_upstream_layout() {
        let fp = ContentHash::parse("93aba3c489bef9b73e908f42c18aef12bb05c415").unwrap();
        let text =
            Whitelist::export(1_445_428_513, 1_445_428_513 + 30 * 86_400, "legacy_aufs.cern.ch", &[fp]);
        assert_eq!(text, LEGACY_LETTER);
    }
}
