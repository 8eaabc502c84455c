//! The server's secret key, and what it is used for.
//!
//! sregistry-cli signs its requests with HMAC-SHA256 keyed by the user's API
//! token itself, so the server must be able to recover the token, while
//! tokens are stored hashed. Each token is therefore also stored *sealed*:
//! encrypted (XChaCha20-Poly1305, random nonce) with a key that lives in a
//! file beside the database, never in it. A stolen database alone yields no
//! usable token.
//!
//! The same key signs the short-lived download links handed out by the
//! shub protocol. Each use gets its own subkey, derived with HMAC-SHA256
//! from the master key and a label, so that a value made for one purpose
//! can never be accepted for another.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// Bytes in the master key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Prefix of a sealed value, so that a later change of scheme can coexist.
const SEALED_PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the secret key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the secret key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key file {path} must hold exactly 64 hexadecimal digits (32 bytes); \
         it was not written by sreg-server, or was damaged"
    )]
    Format { path: PathBuf },
}

/// The subkeys derived from the server's secret key.
#[derive(Clone)]
pub struct Keys {
    seal: [u8; KEY_LEN],
    links: [u8; KEY_LEN],
}

// Never print key material, not even in a debug dump of the app state.
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl Keys {
    /// Derives the subkeys from a master key.
    pub fn from_master(master: &[u8; KEY_LEN]) -> Self {
        Self {
            seal: hmac(master, &[b"sreg v1 token sealing"]),
            links: hmac(master, &[b"sreg v1 download links"]),
        }
    }

    /// Reads the key file, or creates it (mode 0600, 32 random bytes as
    /// hex) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(KeyError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Format { path: path.into() })?;
        let master: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Format { path: path.into() })?;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the secret key file is readable by other users: chmod 600 it"
            );
        }
        Ok(Self::from_master(&master))
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let mut master = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut master);
        // create_new: if another process (say `admin` started at the same
        // time as `serve`) wins the race, use its key rather than replace it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.into(),
                    source,
                })?;
                return Self::parse(path, &text);
            }
            Err(source) => {
                return Err(KeyError::Create {
                    path: path.into(),
                    source,
                });
            }
        };
        let written = file
            .write_all(format!("{}\n", hex::encode(master)).as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            // A half-written key would lock every sealed token out later.
            let _ = std::fs::remove_file(path);
            return Err(KeyError::Create {
                path: path.into(),
                source,
            });
        }
        tracing::info!(path = %path.display(), "created the server's secret key");
        Ok(Self::from_master(&master))
    }

    /// Encrypts `secret`, bound to `context` (authenticated, not stored), so
    /// that a sealed value moved to another context does not open.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> String {
        let cipher = XChaCha20Poly1305::new(&self.seal.into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: context,
                },
            )
            // Encryption fails only for messages of gigabytes.
            .unwrap_or_else(|_| unreachable!("sealing a short secret cannot fail"));
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", hex::encode(out))
    }

    /// Decrypts a value made by [`Keys::seal`] with the same key and
    /// context; `None` for anything else.
    pub fn unseal(&self, sealed: &str, context: &[u8]) -> Option<Vec<u8>> {
        let bytes = hex::decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        XChaCha20Poly1305::new(&self.seal.into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
    }

    /// The signature of a download link's fields.
    pub fn sign_link(&self, fields: &[&[u8]]) -> [u8; 32] {
        // Length-prefixed, so that field boundaries cannot be shifted.
        let lens: Vec<[u8; 8]> = fields
            .iter()
            .map(|f| (f.len() as u64).to_be_bytes())
            .collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(fields.len() * 2);
        for (f, l) in fields.iter().zip(&lens) {
            parts.push(l);
            parts.push(f);
        }
        hmac(&self.links, &parts)
    }

    /// Whether `signature` signs `fields`, compared in constant time.
    pub fn verify_link(&self, fields: &[&[u8]], signature: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        signature.len() == 32 && bool::from(self.sign_link(fields).ct_eq(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_the_same_key_and_context() {
        let keys = Keys::from_master(&[7; KEY_LEN]);
        let token = b"sreg_abcdefgh0123456789abcdefghijklmnopqrstuv";
        let sealed = keys.seal(token, b"token:1");
        assert!(sealed.starts_with("v1."));
        let text = String::from_utf8_lossy(token);
        assert!(!sealed.contains(&*text), "sealed value holds the token");
        assert!(!sealed.contains(&hex::encode(token)));
        assert_eq!(
            keys.unseal(&sealed, b"token:1").as_deref(),
            Some(&token[..])
        );
        // Random nonces: the same token seals differently each time.
        assert_ne!(keys.seal(token, b"token:1"), sealed);

        let other = Keys::from_master(&[8; KEY_LEN]);
        assert_eq!(other.unseal(&sealed, b"token:1"), None, "wrong key");
        assert_eq!(keys.unseal(&sealed, b"token:2"), None, "wrong context");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(keys.unseal(&tampered, b"token:1"), None, "tampered");
        assert_eq!(keys.unseal("v1.00", b"token:1"), None);
        assert_eq!(keys.unseal("garbage", b"token:1"), None);
    }

    #[test]
    fn link_signatures_bind_every_field() {
        let keys = Keys::from_master(&[1; KEY_LEN]);
        let sig = keys.sign_link(&[b"12", b"3"]);
        assert!(keys.verify_link(&[b"12", b"3"], &sig));
        assert!(!keys.verify_link(&[b"1", b"23"], &sig), "shifted boundary");
        assert!(!keys.verify_link(&[b"12", b"4"], &sig));
        assert!(!keys.verify_link(&[b"12", b"3"], &sig[..31]));
        let other = Keys::from_master(&[2; KEY_LEN]);
        assert!(!other.verify_link(&[b"12", b"3"], &sig));
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = Keys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        // The same key on the next start: what it sealed still opens.
        let sealed = a.seal(b"x", b"c");
        let b = Keys::load_or_create(&path).unwrap();
        assert_eq!(b.unseal(&sealed, b"c").as_deref(), Some(&b"x"[..]));

        std::fs::write(&path, "not hex").unwrap();
        let err = Keys::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::Format { .. }), "{err}");
        std::fs::write(&path, "abcd").unwrap();
        assert!(matches!(
            Keys::load_or_create(&path),
            Err(KeyError::Format { .. })
        ));
        let missing_dir = dir.path().join("nope").join("secret.key");
        assert!(matches!(
            Keys::load_or_create(&missing_dir),
            Err(KeyError::Create { .. })
        ));
    }
}
