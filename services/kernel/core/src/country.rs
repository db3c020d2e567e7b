//! Country codes: ISO 3166-1 alpha-2 (the officially assigned list) plus `GS`,
//! the secretariat. A `CountryCode` cannot hold anything else, so code that
//! receives one never re-checks it ("parse, don't validate").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The secretariat's pseudo-country code.
pub const SECRETARIAT: &str = "GS";

/// Officially assigned ISO 3166-1 alpha-2 codes, sorted so lookups can
/// binary-search. Rationale for a list over a regex: `XX` or `ZZ` look like
/// countries to a regex but name nobody, and a notice addressed to nobody is
/// a silent failure.
const ISO_3166_1_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA",
    "ZM", "ZW",
];

/// A country a user, an operation or a team belongs to.
///
/// Note: ISO assigns `GS` to South Georgia; Concord reserves it for the
/// secretariat, as docs/design.md says, so both readings share one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 country code nor GS")]
pub struct UnknownCountry(pub String);

impl CountryCode {
    pub fn parse(code: &str) -> Result<Self, UnknownCountry> {
        if ISO_3166_1_ALPHA_2.binary_search(&code).is_ok() {
            let b = code.as_bytes();
            Ok(Self([b[0], b[1]]))
        } else {
            Err(UnknownCountry(code.to_owned()))
        }
    }

    /// Every code, in order (the secretariat's `GS` among them).
    pub fn all() -> impl Iterator<Item = CountryCode> {
        ISO_3166_1_ALPHA_2.iter().map(|c| {
            let b = c.as_bytes();
            CountryCode([b[0], b[1]])
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from the ASCII list above.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn is_secretariat(&self) -> bool {
        self.as_str() == SECRETARIAT
    }
}

impl std::str::FromStr for CountryCode {
    type Err = UnknownCountry;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_unique_so_binary_search_is_sound() {
        assert!(ISO_3166_1_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn accepts_real_codes_and_the_secretariat() {
        for c in ["FR", "DE", "MC", "RS", "US", "GS"] {
            assert_eq!(CountryCode::parse(c).map(|c| c.to_string()), Ok(c.to_owned()));
        }
        assert!(CountryCode::parse("GS").is_ok_and(|c| c.is_secretariat()));
    }

    #[test]
    fn refuses_lookalikes() {
        for c in ["XX", "ZZ", "fr", "FRA", "", "F", "UK", "EU"] {
            assert!(CountryCode::parse(c).is_err(), "{c} accepted");
        }
    }

    #[test]
    fn serde_round_trip_and_refusal() {
        let c: CountryCode = serde_json::from_str("\"ES\"").expect("valid code");
        assert_eq!(serde_json::to_string(&c).expect("serializes"), "\"ES\"");
        let e = serde_json::from_str::<CountryCode>("\"XX\"").expect_err("XX is no country");
        assert!(e.to_string().contains("\"XX\" is not an ISO 3166-1"));
    }

    /// The wire's schema lists the same codes (`schemas/common.schema.json`
    /// `country`), so a code the schema admits is one the services accept.
    #[test]
    fn the_schema_lists_exactly_these_codes() {
        let text = include_str!("../../../../schemas/common.schema.json");
        let schema: serde_json::Value = serde_json::from_str(text).expect("common schema");
        let listed: Vec<&str> = schema["$defs"]["country"]["enum"]
            .as_array()
            .expect("an enum of codes")
            .iter()
            .map(|c| c.as_str().expect("a code"))
            .collect();
        assert_eq!(listed, ISO_3166_1_ALPHA_2);
    }
}
