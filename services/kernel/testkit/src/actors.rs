//! Who acts in decider tests: real country codes and actors named
//! `<country>-<role>` (`de-liaison`), written once for every contract's tests.

use concord_core::CountryCode;
use concord_core::envelope::{Actor, Role};

/// A country code a test names; panics on one that names nobody.
pub fn cc(code: &str) -> CountryCode {
    CountryCode::parse(code).expect("test country codes are real")
}

pub fn ccs(codes: &[&str]) -> Vec<CountryCode> {
    codes.iter().map(|c| cc(c)).collect()
}

/// `de-liaison`: the sub of `actor(role, country)`.
pub fn sub(role: Role, country: &str) -> String {
    format!("{}-{}", country.to_lowercase(), role.as_str())
}

pub fn actor(role: Role, country: &str) -> Actor {
    Actor {
        sub: sub(role, country),
        role,
        country: cc(country),
    }
}

pub fn coordinator(country: &str) -> Actor {
    actor(Role::Coordinator, country)
}

pub fn liaison(country: &str) -> Actor {
    actor(Role::Liaison, country)
}

pub fn reviewer(country: &str) -> Actor {
    actor(Role::Reviewer, country)
}

pub fn auditor(country: &str) -> Actor {
    actor(Role::Auditor, country)
}
