//! Form tokens against cross-site request forgery: a token is an HMAC,
//! under the server's key, of what the visitor's browser holds (the session
//! id once signed in, a random anonymous cookie before), so that no other
//! site can produce it and it dies with the session. Checked in constant
//! time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::session::Visitor;
use crate::sealing::Keys;

/// Separates these signatures from the download links signed with the same
/// subkey (their first field is never this text).
const PURPOSE: &[u8] = b"sreg page form token v1";

pub fn token(keys: &Keys, v: &Visitor) -> String {
    URL_SAFE_NO_PAD.encode(keys.sign_link(&[PURPOSE, v.csrf_binding().as_bytes()]))
}

/// Whether a submitted token belongs to this visitor.
pub fn verify(keys: &Keys, v: &Visitor, submitted: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(submitted.trim()) {
        Ok(sig) => keys.verify_link(&[PURPOSE, v.csrf_binding().as_bytes()], &sig),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::access::Caller;

    fn visitor(session: Option<&str>, anon: &str) -> Visitor {
        Visitor {
            caller: Caller::anonymous(),
            session: session.map(str::to_string),
            anon: anon.into(),
            csrf_cookie_is_new: false,
            client: None,
        }
    }

    #[test]
    fn tokens_are_bound_to_the_visitor_and_the_key() {
        let keys = Keys::from_master(&[1; 32]);
        let a = visitor(None, "anon-a");
        let t = token(&keys, &a);
        assert!(verify(&keys, &a, &t));
        assert!(!verify(&keys, &visitor(None, "anon-b"), &t));
        assert!(
            !verify(&keys, &visitor(Some("sess"), "anon-a"), &t),
            "sign-in changes the binding"
        );
        assert!(!verify(&Keys::from_master(&[2; 32]), &a, &t));
        assert!(!verify(&keys, &a, ""));
        assert!(!verify(&keys, &a, "not base64!"));
    }
}
