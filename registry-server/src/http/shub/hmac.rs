//! sregistry-cli's request signatures (ci-and-clients.md §1):
//!
//! ```text
//! Authorization: SREGISTRY-HMAC-SHA256 Credential=<kind>/<base64 user>/<ts>,Signature=<hex>
//! ```
//!
//! where the signature is HMAC-SHA256, keyed by the user's API token, over
//! `<kind>|<collection>|<ts>|<name>|<tag>|`, and `ts` is the UTC hour
//! (`%Y%m%dT%HZ`).
//!
//! Differences from sregistry, on purpose:
//! - `Credential` is split on its first and last `/` only: base64 user names
//!   may contain `/`.
//! - The current and the previous UTC hour are accepted, no other: a request
//!   signed at 12:59:59 still passes at 13:00:01 (and a server clock a little
//!   ahead), while a captured signature is good for two hours at most, and
//!   only for the one operation on the one name it signs.
//! - The signature is checked against each of the user's valid tokens (they
//!   are stored sealed, see `sealing`) in constant time.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::accounts::{self, User};
use crate::model::tokens;
use crate::serve::AppState;

pub const SCHEME: &str = "SREGISTRY-HMAC-SHA256";

/// What a signature allows; each route accepts one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Push,
    Upload,
    Pull,
    Delete,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::Upload => "upload",
            Kind::Pull => "pull",
            Kind::Delete => "delete",
        }
    }
}

/// The parts of an `Authorization: SREGISTRY-HMAC-SHA256 ...` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: String,
    pub username: String,
    pub timestamp: String,
    pub signature: [u8; 32],
}

/// Whether a header value uses this scheme (then it must parse, or the
/// request is refused rather than treated as anonymous).
pub fn is_hmac(value: &str) -> bool {
    value
        .trim_start()
        .get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

/// Parses a header value; `None` when it is not a well-formed credential.
pub fn parse(value: &str) -> Option<Credential> {
    let value = value.trim();
    if !is_hmac(value) {
        return None;
    }
    let rest = value[SCHEME.len()..].trim_start();
    let (mut credential, mut signature) = (None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(c) = part.strip_prefix("Credential=") {
            credential = Some(c);
        } else if let Some(s) = part.strip_prefix("Signature=") {
            signature = Some(s);
        }
    }
    let credential = credential?;
    // First and last '/' only: the middle is base64, which may hold '/'.
    let (kind, rest) = credential.split_once('/')?;
    let (user_b64, timestamp) = rest.rsplit_once('/')?;
    if kind.is_empty() || user_b64.is_empty() || timestamp.is_empty() {
        return None;
    }
    let username = base64::engine::general_purpose::STANDARD
        .decode(user_b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let signature: [u8; 32] = hex::decode(signature?.trim()).ok()?.try_into().ok()?;
    Some(Credential {
        kind: kind.to_string(),
        username,
        timestamp: timestamp.to_string(),
        signature,
    })
}

/// sregistry's time stamp: the UTC hour of `at`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%HZ").to_string()
}

/// Whether a signature's time stamp is the current or the previous UTC hour.
pub fn timestamp_acceptable(ts: &str, now: DateTime<Utc>) -> bool {
    ts == timestamp(now) || ts == timestamp(now - Duration::hours(1))
}

/// The string sregistry-cli signs (note the trailing `|`).
pub fn payload(kind: &str, ts: &str, (collection, name, tag): (&str, &str, &str)) -> String {
    format!("{kind}|{collection}|{ts}|{name}|{tag}|")
}

/// HMAC-SHA256 of `payload` keyed by `key`.
pub fn sign(key: &[u8], payload: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `signature` is the signature of `payload` under `key`, compared
/// in constant time.
pub fn verify(key: &[u8], payload: &str, signature: &[u8; 32]) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(payload.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// Said for every signature that does not verify, whatever the reason
/// (unknown user, wrong token, revoked token), so that the answer does not
/// tell which user names exist.
const BAD_SIGNATURE: &str = "the request's signature does not verify: check SREGISTRY_REGISTRY_USERNAME \
     and SREGISTRY_REGISTRY_TOKEN (a valid, unrevoked token of that user)";

/// The user who signed `header` for `kind` on `names`, at `now`. Failures
/// are 403s, as sregistry answers them and as the client expects.
pub async fn authenticate(
    state: &AppState,
    header: &str,
    kind: Kind,
    names: (&str, &str, &str),
    now: DateTime<Utc>,
) -> Result<User> {
    let cred = parse(header).ok_or_else(|| {
        Error::Forbidden(format!(
            "malformed Authorization header: expected `{SCHEME} Credential=<kind>/<base64 user>/<YYYYMMDDTHHZ>,Signature=<hex>`"
        ))
    })?;
    if cred.kind != kind.as_str() {
        return Err(Error::Forbidden(format!(
            "this request needs a '{}' signature, not '{}'",
            kind.as_str(),
            cred.kind
        )));
    }
    if !timestamp_acceptable(&cred.timestamp, now) {
        return Err(Error::Forbidden(format!(
            "the signature's time stamp {} is not the current or the previous UTC hour \
             (the server's is {}): check the client's clock",
            cred.timestamp,
            timestamp(now)
        )));
    }
    let Some(user) = accounts::user_by_name(&state.db.pool, &cred.username).await? else {
        return Err(Error::Forbidden(BAD_SIGNATURE.into()));
    };
    if user.active == 0 {
        return Err(Error::Forbidden(BAD_SIGNATURE.into()));
    }
    let signed = payload(kind.as_str(), &cred.timestamp, names);
    let token = tokens::find_active_sealed(&state.db.pool, &state.keys, user.id, |token| {
        verify(token, &signed, &cred.signature)
    })
    .await?;
    match token {
        Some(_) => Ok(user),
        None => Err(Error::Forbidden(BAD_SIGNATURE.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn verified_test_vectors() {
        // shared/docs/ci-and-clients.md §1, checked against the real client.
        let names = ("dinosaur", "hello", "latest");
        let push = payload("push", "20240101T12Z", names);
        assert_eq!(push, "push|dinosaur|20240101T12Z|hello|latest|");
        assert_eq!(
            hex::encode(sign(b"abc123", &push)),
            "6289420768749d5647f8c20703d467a5598d0f8ca4f9c8cecf5006ae774eeae2"
        );
        let upload = payload("upload", "20240101T12Z", names);
        assert_eq!(
            hex::encode(sign(b"abc123", &upload)),
            "489571580885c88cbb3ebbaa42dbeb36f240f75071fb09edd9226c53b58339a3"
        );
        let sig: [u8; 32] = sign(b"abc123", &push);
        assert!(verify(b"abc123", &push, &sig));
        assert!(!verify(b"abc124", &push, &sig), "another token");
        assert!(!verify(b"abc123", &upload, &sig), "another kind");

        let header = "SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/20240101T12Z,\
             Signature=6289420768749d5647f8c20703d467a5598d0f8ca4f9c8cecf5006ae774eeae2";
        let cred = parse(header).unwrap();
        assert_eq!(cred.kind, "push");
        assert_eq!(cred.username, "vsoch");
        assert_eq!(cred.timestamp, "20240101T12Z");
        assert_eq!(cred.signature, sig);
    }

    #[test]
    fn credential_splits_on_first_and_last_slash() {
        // "ab?>" is "YWI/Pg==" in base64: a '/' inside the user part.
        let header = format!(
            "SREGISTRY-HMAC-SHA256 Credential=pull/YWI/Pg==/20240101T12Z,Signature={}",
            "0".repeat(64)
        );
        let cred = parse(&header).unwrap();
        assert_eq!(cred.kind, "pull");
        assert_eq!(cred.username, "ab?>");
        assert_eq!(cred.timestamp, "20240101T12Z");
        // Scheme in any case, spaces after commas.
        let relaxed = header
            .replace("SREGISTRY-HMAC-SHA256", "sregistry-hmac-sha256")
            .replace(",Signature", ", Signature");
        assert_eq!(parse(&relaxed), Some(cred));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let sig = "0".repeat(64);
        for bad in [
            String::new(),
            format!("Bearer x,Signature={sig}"),
            format!("SREGISTRY-HMAC-SHA256 Signature={sig}"),
            "SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/20240101T12Z".to_string(),
            format!("SREGISTRY-HMAC-SHA256 Credential=push/20240101T12Z,Signature={sig}"),
            format!("SREGISTRY-HMAC-SHA256 Credential=push//20240101T12Z,Signature={sig}"),
            format!("SREGISTRY-HMAC-SHA256 Credential=/dnNvY2g=/20240101T12Z,Signature={sig}"),
            format!("SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/,Signature={sig}"),
            format!("SREGISTRY-HMAC-SHA256 Credential=push/!!!/20240101T12Z,Signature={sig}"),
            "SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/20240101T12Z,Signature=abc".to_string(),
            format!(
                "SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/20240101T12Z,Signature={sig}00"
            ),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn current_and_previous_hour_only() {
        let now = at(2024, 1, 1, 13, 0, 5);
        assert_eq!(timestamp(now), "20240101T13Z");
        assert!(timestamp_acceptable("20240101T13Z", now), "current hour");
        assert!(timestamp_acceptable("20240101T12Z", now), "previous hour");
        assert!(!timestamp_acceptable("20240101T11Z", now), "two hours ago");
        assert!(!timestamp_acceptable("20240101T14Z", now), "next hour");
        assert!(!timestamp_acceptable("", now));
        // Across midnight and a year boundary.
        let new_year = at(2025, 1, 1, 0, 10, 0);
        assert!(timestamp_acceptable("20241231T23Z", new_year));
        assert!(!timestamp_acceptable("20241231T22Z", new_year));
        assert!(!timestamp_acceptable("20250101T01Z", new_year));
    }
}
