//! Identifiers of SPEC §3: resident ID numbers (GB 11643), unified social credit codes (GB 32100),
//! licence type codes and licence identifiers (after GB/T 36904, ISO/IEC 7064 MOD 37,36 check).
//!
//! Every identifier is a newtype with one `parse` constructor: once you hold one, it is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Date;

/// Why an identifier was refused. Positions are 1-based, as a person counts characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected} characters long, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what}: character {position} ({found:?}) is not allowed here")]
    Character {
        what: &'static str,
        position: usize,
        found: char,
    },
    #[error("{what}: check character is {found:?} but should be {expected:?} (mistyped?)")]
    Check {
        what: &'static str,
        expected: char,
        found: char,
    },
    #[error("resident ID: birth date {0} is not a real date")]
    BirthDate(String),
    #[error("resident ID: birth date {0} is in the future")]
    FutureBirthDate(String),
    #[error("licence identifier: {0}")]
    Shape(String),
}

fn check_length(what: &'static str, s: &str, expected: usize) -> Result<(), IdError> {
    let got = s.chars().count();
    if got == expected {
        Ok(())
    } else {
        Err(IdError::Length {
            what,
            expected,
            got,
        })
    }
}

/// Names the first character of `input` that `allowed` refuses, counting positions from 1.
fn reject_bad_character(
    what: &'static str,
    input: &str,
    allowed: impl Fn(usize, char) -> bool,
) -> Result<(), IdError> {
    match input.chars().enumerate().find(|&(i, c)| !allowed(i, c)) {
        Some((i, found)) => Err(IdError::Character {
            what,
            position: i + 1,
            found,
        }),
        None => Ok(()),
    }
}

/// Implements Display, FromStr, serde and `as_str` for a newtype around a validated `String`.
macro_rules! string_identifier {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Resident ID (GB 11643)

const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";

/// An 18-character resident identity number with a valid check character and birth date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResidentId(String);
string_identifier!(ResidentId);

impl ResidentId {
    /// Parses against today's date in China Standard Time (a birth date may not lie in the future).
    pub fn parse(input: &str) -> Result<Self, IdError> {
        Self::parse_on(input, crate::time_util::today_cst())
    }

    /// Parses as of `today`; a lowercase `x` check character is accepted and stored uppercase.
    pub fn parse_on(input: &str, today: Date) -> Result<Self, IdError> {
        const WHAT: &str = "resident ID";
        check_length(WHAT, input, 18)?;
        let upper = input.to_ascii_uppercase();
        reject_bad_character(WHAT, &upper, |i, c| {
            c.is_ascii_digit() || (i == 17 && c == 'X')
        })?;
        let expected = Self::check_char_for(&upper[..17]).expect("17 digits");
        let found = upper.as_bytes()[17] as char;
        if found != expected {
            return Err(IdError::Check {
                what: WHAT,
                expected,
                found,
            });
        }
        let birth = &upper[6..14];
        let date = crate::time_util::parse_compact_date(birth)
            .ok_or_else(|| IdError::BirthDate(birth.to_string()))?;
        if date > today {
            return Err(IdError::FutureBirthDate(birth.to_string()));
        }
        Ok(Self(upper))
    }

    /// The check character that completes 17 digits (used to generate sample holders).
    pub fn check_char_for(first17: &str) -> Option<char> {
        if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let sum: u32 = first17
            .bytes()
            .zip(RESIDENT_WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        Some(RESIDENT_CHECK[(sum % 11) as usize] as char)
    }

    /// First 4 and last 4 characters, the rest `*` (SPEC §3, masking).
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..4], "*".repeat(10), &self.0[14..])
    }
}

// ---------------------------------------------------------------------------------------------
// Unified social credit code (GB 32100)

const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn uscc_value(b: u8) -> Option<u32> {
    USCC_CHARSET.iter().position(|&c| c == b).map(|i| i as u32)
}

/// An 18-character unified social credit code with a valid check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);
string_identifier!(Uscc);

impl Uscc {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        const WHAT: &str = "unified social credit code";
        check_length(WHAT, input, 18)?;
        reject_bad_character(WHAT, input, |_, c| {
            c.is_ascii() && uscc_value(c as u8).is_some()
        })?;
        let expected = Self::check_char_for(&input[..17]).expect("17 charset characters");
        let found = input.as_bytes()[17] as char;
        if found != expected {
            return Err(IdError::Check {
                what: WHAT,
                expected,
                found,
            });
        }
        Ok(Self(input.to_string()))
    }

    /// The check character that completes 17 charset characters, or None if they are not such.
    pub fn check_char_for(first17: &str) -> Option<char> {
        if first17.len() != 17 {
            return None;
        }
        let mut sum = 0;
        for (b, w) in first17.bytes().zip(USCC_WEIGHTS) {
            sum += uscc_value(b)? * w;
        }
        let c = (31 - sum % 31) % 31;
        Some(USCC_CHARSET[c as usize] as char)
    }
}

// ---------------------------------------------------------------------------------------------
// Licence type code: competent authority's USCC + 3 digits

/// A 21-character licence type code (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeCode(String);
string_identifier!(TypeCode);

impl TypeCode {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        const WHAT: &str = "licence type code";
        check_length(WHAT, input, 21)?;
        // Only ASCII may follow, so that the byte slices below cut between characters.
        reject_bad_character(WHAT, input, |_, c| c.is_ascii_alphanumeric())?;
        Uscc::parse(&input[..18])?;
        reject_bad_character(WHAT, input, |i, c| i < 18 || c.is_ascii_digit())?;
        Ok(Self(input.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Licence identifiers (SPEC §3)

/// The fixed OID arc every licence identifier starts with.
pub const IDENTIFIER_PREFIX: &str = "1.2.156.3005.2";

const MOD37_CHARSET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// ISO/IEC 7064 MOD 37,36 (hybrid system) check character over `0-9A-Z` text.
pub fn mod37_36_check(text: &str) -> Option<char> {
    let mut p: u32 = 36;
    for b in text.bytes() {
        let value = MOD37_CHARSET.iter().position(|&c| c == b)? as u32;
        let mut s = (p + value) % 36;
        if s == 0 {
            s = 36;
        }
        p = (2 * s) % 37;
    }
    Some(MOD37_CHARSET[((37 - p) % 36) as usize] as char)
}

/// Names a licence across all its versions: `1.2.156.3005.2.{type}.{issuer}.{serial}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LicenceKey {
    pub type_code: TypeCode,
    pub issuer: Uscc,
    pub serial: u64,
}

/// Names one version of a licence: the key plus `.{version:03}.{check}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionId {
    pub key: LicenceKey,
    pub version: u32,
}

/// What a caller may hand over to name a licence: a whole version identifier or just the licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenceRef {
    Licence(LicenceKey),
    Version(VersionId),
}

impl LicenceRef {
    pub fn key(&self) -> &LicenceKey {
        match self {
            LicenceRef::Licence(k) => k,
            LicenceRef::Version(v) => &v.key,
        }
    }

    pub fn parse(input: &str) -> Result<Self, IdError> {
        let rest = input
            .strip_prefix(IDENTIFIER_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(|| {
                IdError::Shape(format!(
                    "must start with {IDENTIFIER_PREFIX}. (got {:?})",
                    truncate(input)
                ))
            })?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 3 && parts.len() != 5 {
            return Err(IdError::Shape(format!(
                "expected {IDENTIFIER_PREFIX}.TYPE.ISSUER.SERIAL[.VERSION.CHECK], got {} parts after the prefix",
                parts.len()
            )));
        }
        let type_code = TypeCode::parse(parts[0])?;
        let issuer = Uscc::parse(parts[1])?;
        let serial = parse_serial(parts[2])?;
        let key = LicenceKey {
            type_code,
            issuer,
            serial,
        };
        if parts.len() == 3 {
            return Ok(LicenceRef::Licence(key));
        }
        let version = parse_version(parts[3])?;
        let id = VersionId { key, version };
        let expected = id.check_char();
        let found = parts[4];
        if found.len() != 1 || !found.starts_with(expected) {
            return Err(IdError::Shape(format!(
                "check character is {found:?} but should be {expected:?}: the identifier is mistyped"
            )));
        }
        Ok(LicenceRef::Version(id))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_serial(s: &str) -> Result<u64, IdError> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || s.starts_with('0') || s.len() > 19 {
        return Err(IdError::Shape(format!(
            "serial {s:?} must be decimal digits without a leading zero"
        )));
    }
    s.parse()
        .map_err(|_| IdError::Shape(format!("serial {s:?} is too large")))
}

fn parse_version(s: &str) -> Result<u32, IdError> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) || s == "000" {
        return Err(IdError::Shape(format!(
            "version {s:?} must be three digits from 001 to 999"
        )));
    }
    Ok(s.parse().expect("three digits"))
}

impl LicenceKey {
    pub fn version(&self, version: u32) -> VersionId {
        VersionId {
            key: self.clone(),
            version,
        }
    }
}

impl fmt::Display for LicenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{IDENTIFIER_PREFIX}.{}.{}.{}",
            self.type_code, self.issuer, self.serial
        )
    }
}

impl VersionId {
    pub fn check_char(&self) -> char {
        let text = format!(
            "{}{}{}{:03}",
            self.key.type_code, self.key.issuer, self.key.serial, self.version
        );
        mod37_36_check(&text).expect("type code, USCC and digits are all in 0-9A-Z")
    }

    pub fn parse(input: &str) -> Result<Self, IdError> {
        match LicenceRef::parse(input)? {
            LicenceRef::Version(v) => Ok(v),
            LicenceRef::Licence(_) => Err(IdError::Shape(
                "this names a licence, not one version: add .VERSION.CHECK".into(),
            )),
        }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}.{}", self.key, self.version, self.check_char())
    }
}

impl Serialize for VersionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for LicenceKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 29);

    /// Every other character of `alphabet` put at every position of `valid`.
    fn substitutions<'a>(valid: &'a str, alphabet: &'a str) -> impl Iterator<Item = String> + 'a {
        (0..valid.len()).flat_map(move |i| {
            alphabet.chars().filter_map(move |c| {
                let mut s = valid.to_string();
                if s.as_bytes()[i] as char == c {
                    return None;
                }
                s.replace_range(i..i + 1, &c.to_string());
                Some(s)
            })
        })
    }

    #[test]
    fn spec_resident_ids_are_valid() {
        for id in ["11010519491231002X", "440524188001010014"] {
            assert_eq!(ResidentId::parse_on(id, TODAY).unwrap().as_str(), id);
        }
    }

    #[test]
    fn every_single_substitution_of_a_resident_id_is_detected() {
        for valid in ["11010519491231002X", "440524188001010014"] {
            for bad in substitutions(valid, "0123456789X") {
                assert!(ResidentId::parse_on(&bad, TODAY).is_err(), "{bad} accepted");
            }
        }
    }

    #[test]
    fn resident_id_errors_name_the_problem() {
        assert_eq!(
            ResidentId::parse_on("11010519491231002", TODAY),
            Err(IdError::Length {
                what: "resident ID",
                expected: 18,
                got: 17
            })
        );
        assert!(matches!(
            ResidentId::parse_on("11010519491231002Y", TODAY),
            Err(IdError::Character { position: 18, .. })
        ));
        assert!(matches!(
            ResidentId::parse_on("110105194912310021", TODAY),
            Err(IdError::Check { expected: 'X', .. })
        ));
        // A correct check character over an impossible date (Feb 30th).
        let first17 = "11010519490230002";
        let id = format!("{first17}{}", ResidentId::check_char_for(first17).unwrap());
        assert!(matches!(
            ResidentId::parse_on(&id, TODAY),
            Err(IdError::BirthDate(_))
        ));
        let first17 = "11010520991231002";
        let id = format!("{first17}{}", ResidentId::check_char_for(first17).unwrap());
        assert!(matches!(
            ResidentId::parse_on(&id, TODAY),
            Err(IdError::FutureBirthDate(_))
        ));
    }

    #[test]
    fn resident_id_lowercase_x_is_normalised_and_masking_keeps_four_each_side() {
        let id = ResidentId::parse_on("11010519491231002x", TODAY).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.masked(), "1101**********002X");
    }

    #[test]
    fn spec_usccs_are_valid_and_every_substitution_is_detected() {
        let charset = std::str::from_utf8(USCC_CHARSET).unwrap();
        for valid in [
            "91350100M000100Y43",
            "11100000000013338W",
            "11220000013544541J",
        ] {
            assert!(Uscc::parse(valid).is_ok(), "{valid}");
            for bad in substitutions(valid, charset) {
                assert!(Uscc::parse(&bad).is_err(), "{bad} accepted");
            }
        }
        assert!(matches!(
            Uscc::parse("91350100M000100I43"),
            Err(IdError::Character { position: 16, .. })
        ));
    }

    const SPEC_EXAMPLE: &str =
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F";

    #[test]
    fn spec_worked_example_has_check_f() {
        let id = VersionId::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(id.key.serial, 2430599);
        assert_eq!(id.version, 1);
        assert_eq!(id.check_char(), 'F');
        assert_eq!(id.to_string(), SPEC_EXAMPLE);
        assert_eq!(
            id.key.to_string(),
            "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599"
        );
    }

    #[test]
    fn every_single_substitution_of_the_worked_example_is_rejected() {
        let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.";
        let mut tried = 0;
        for bad in substitutions(SPEC_EXAMPLE, alphabet) {
            tried += 1;
            assert!(LicenceRef::parse(&bad).is_err(), "{bad} accepted");
        }
        assert!(tried > 2000);
    }

    #[test]
    fn licence_key_without_version_parses_and_bad_shapes_are_explained() {
        let key = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599";
        assert!(matches!(LicenceRef::parse(key), Ok(LicenceRef::Licence(_))));
        let err = LicenceRef::parse(&format!("{key}.001.G")).unwrap_err();
        assert!(err.to_string().contains("mistyped"), "{err}");
        let err = LicenceRef::parse(&format!("{key}.1.F")).unwrap_err();
        assert!(err.to_string().contains("three digits"), "{err}");
        let err = LicenceRef::parse(&SPEC_EXAMPLE.to_lowercase()).unwrap_err();
        assert!(matches!(err, IdError::Character { .. }), "{err}");
        let err = LicenceRef::parse("2.2.156").unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
        let err =
            LicenceRef::parse("1.2.156.3005.2.11100000000013338W032.11220000013544541J.02430599")
                .unwrap_err();
        assert!(err.to_string().contains("leading zero"), "{err}");
    }

    #[test]
    fn type_code_is_a_uscc_and_three_digits() {
        assert!(TypeCode::parse("11100000000013338W032").is_ok());
        assert!(TypeCode::parse("11100000000013338X032").is_err());
        assert!(matches!(
            TypeCode::parse("11100000000013338W03A"),
            Err(IdError::Character { position: 21, .. })
        ));
    }

    /// Text an adversary or a spreadsheet might hand over: identifier characters mixed with
    /// separators, lowercase, multi-byte characters and controls.
    fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            proptest::prelude::any::<String>(),
            "[0-9A-Z.xX]{0,80}",
            "[0-9A-Zä名é\\.\u{0}\r\n -]{0,80}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn no_text_makes_an_identifier_parser_panic(text in hostile_text()) {
            let _ = ResidentId::parse_on(&text, TODAY);
            let _ = Uscc::parse(&text);
            let _ = TypeCode::parse(&text);
            let _ = LicenceRef::parse(&text);
            let _ = LicenceRef::parse(&format!("{IDENTIFIER_PREFIX}.{text}"));
            let _ = LicenceRef::parse(&format!("{IDENTIFIER_PREFIX}.{text}.11220000013544541J.1.001.F"));
        }

        #[test]
        fn any_one_character_put_into_the_worked_example_is_refused_or_the_same(
            position in 0..SPEC_EXAMPLE.len(),
            c in proptest::prelude::any::<char>(),
        ) {
            let mut text: Vec<char> = SPEC_EXAMPLE.chars().collect();
            text[position] = c;
            let text: String = text.into_iter().collect();
            match LicenceRef::parse(&text) {
                Ok(parsed) => proptest::prop_assert_eq!(
                    (text.as_str(), parsed),
                    (SPEC_EXAMPLE, LicenceRef::parse(SPEC_EXAMPLE).unwrap())
                ),
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn non_ascii_anywhere_in_a_type_code_is_a_character_error_not_a_panic() {
        for code in [
            "00000000000000000ä000",
            "11100000000013338W0ä2",
            "ä1100000000013338W032",
        ] {
            assert!(
                matches!(
                    TypeCode::parse(code),
                    Err(IdError::Character { found: 'ä', .. })
                ),
                "{code}"
            );
        }
    }
}
