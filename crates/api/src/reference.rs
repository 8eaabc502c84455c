//! Image references, as `sreg` commands and every protocol take them.
//!
//! Grammar (architecture.md):
//! `[library://[HOST/]]ENTITY/COLLECTION/CONTAINER[:TAG]`, or the two-part
//! `COLLECTION/CONTAINER[:TAG]` of shub and sregistry-cli. The tag defaults to
//! `latest`.
//!
//! Names follow the library client's own rule, `[a-z0-9]+([._-][a-z0-9]+)*`,
//! so anything a client can push can be named here and nothing else can: no
//! upper case, no `..`, no empty or dotted segments. Tags follow the OCI tag
//! grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, which also admits the
//! `sha256.<hex>` form clients use to pull by content.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const DEFAULT_TAG: &str = "latest";
const SCHEME: &str = "library://";
const MAX_NAME_LEN: usize = 128;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error(
        "{0:?} has {1} path parts: expected ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG]"
    )]
    Parts(String, usize),
    #[error(
        "{part} {value:?} is not a valid name: use lower-case letters and digits, separated by single '.', '_' or '-'"
    )]
    Name { part: &'static str, value: String },
    #[error(
        "tag {0:?} is not valid: use letters, digits, '.', '_' and '-', not starting with '.' or '-', at most 128 characters"
    )]
    Tag(String),
    #[error("host {0:?} is not a valid host[:port]")]
    Host(String),
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port) named in a `library://HOST/...` reference.
    pub host: Option<String>,
    /// The owning user or team; absent in the two-part form.
    pub entity: Option<String>,
    pub collection: String,
    pub container: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let (scheme, rest) = match input.strip_prefix(SCHEME) {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if rest.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // The tag is whatever follows the last ':' of the last path part, so
        // that a host's port is never mistaken for a tag.
        let (path, tag) = match rest.rsplit_once('/') {
            Some((head, last)) => match last.split_once(':') {
                Some((name, tag)) => (format!("{head}/{name}"), Some(tag)),
                None => (rest.to_string(), None),
            },
            None => (rest.to_string(), None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (host, entity, collection, container) = match (scheme, parts.as_slice()) {
            (true, [h, e, c, n]) => (Some(*h), Some(*e), *c, *n),
            (_, [e, c, n]) => (None, Some(*e), *c, *n),
            (_, [c, n]) => (None, None, *c, *n),
            _ => return Err(ReferenceError::Parts(input.to_string(), parts.len())),
        };
        if let Some(h) = host {
            validate_host(h)?;
        }
        if let Some(e) = entity {
            validate_name("entity", e)?;
        }
        validate_name("collection", collection)?;
        validate_name("container", container)?;
        let tag = tag.unwrap_or(DEFAULT_TAG);
        validate_tag(tag)?;
        Ok(Self {
            host: host.map(str::to_string),
            entity: entity.map(str::to_string),
            collection: collection.to_string(),
            container: container.to_string(),
            tag: tag.to_string(),
        })
    }

    /// `ENTITY/COLLECTION/CONTAINER` or `COLLECTION/CONTAINER`, without host or tag.
    pub fn path(&self) -> String {
        match &self.entity {
            Some(e) => format!("{e}/{}/{}", self.collection, self.container),
            None => format!("{}/{}", self.collection, self.container),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{SCHEME}{h}/")?;
        }
        write!(f, "{}:{}", self.path(), self.tag)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[a-z0-9]+([._-][a-z0-9]+)*`, at most 128 characters.
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !b
            .windows(2)
            .any(|w| !w[0].is_ascii_alphanumeric() && !w[1].is_ascii_alphanumeric())
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

fn validate_name(part: &'static str, value: &str) -> Result<(), ReferenceError> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(ReferenceError::Name {
            part,
            value: value.to_string(),
        })
    }
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.to_string()))
    }
}

fn validate_host(host: &str) -> Result<(), ReferenceError> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(ReferenceError::Host(host.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn three_part_forms() {
        let x = r("alice/tools/samtools:1.9");
        assert_eq!(x.host, None);
        assert_eq!(x.entity.as_deref(), Some("alice"));
        assert_eq!(
            (x.collection.as_str(), x.container.as_str(), x.tag.as_str()),
            ("tools", "samtools", "1.9")
        );
        assert_eq!(
            r("library://alice/tools/samtools"),
            r("alice/tools/samtools:latest")
        );
    }

    #[test]
    fn host_only_with_scheme_and_port_is_not_a_tag() {
        let x = r("library://reg.example.org:8700/alice/tools/samtools");
        assert_eq!(x.host.as_deref(), Some("reg.example.org:8700"));
        assert_eq!(x.tag, "latest");
        assert_eq!(
            x.to_string(),
            "library://reg.example.org:8700/alice/tools/samtools:latest"
        );
        assert!(matches!(
            Reference::parse("reg.example.org/alice/tools/samtools"),
            Err(ReferenceError::Parts(_, 4))
        ));
    }

    #[test]
    fn two_part_form_and_hash_tags() {
        let x = r(
            "tools/samtools:sha256.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        assert_eq!(x.entity, None);
        assert_eq!(x.path(), "tools/samtools");
        assert!(x.tag.starts_with("sha256."));
    }

    #[test]
    fn display_round_trips() {
        for s in ["a/b:c", "e/c/n:v1.0", "library://h:1/e/c/n:t"] {
            assert_eq!(r(s).to_string(), s);
            assert_eq!(r(&r(s).to_string()), r(s));
        }
        let json = serde_json::to_string(&r("e/c/n")).unwrap();
        assert_eq!(json, "\"e/c/n:latest\"");
        assert_eq!(
            serde_json::from_str::<Reference>(&json).unwrap(),
            r("e/c/n")
        );
        assert!(serde_json::from_str::<Reference>("\"../x\"").is_err());
    }

    #[test]
    fn path_tricks_and_bad_names_are_refused() {
        for bad in [
            "",
            "library://",
            "x",
            "a/b/c/d/e",
            "../b",
            "a/../b",
            "a/./b",
            "a//b",
            "a/b/",
            "/a/b",
            "A/b",
            "a/B",
            "a-/b",
            "a/b..c",
            "a/.b",
            "a/b:",
            "a/b:.x",
            "a/b:-x",
            "a/b:x/y",
            "a/b:x y",
            "a/b:tag:more",
            "library://bad_host/e/c/n",
            "library://h:0/e/c/n",
            "library://h:99999/e/c/n",
            "a\0/b",
            "é/b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = "a".repeat(129);
        assert!(Reference::parse(&format!("{long}/b")).is_err());
        assert!(Reference::parse(&format!("a/b:{long}")).is_err());
        assert!(Reference::parse(&format!("a/b:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = Reference::parse("Alice/tools/x").unwrap_err().to_string();
        assert!(
            e.contains("entity \"Alice\"") && e.contains("lower-case"),
            "{e}"
        );
        let e = Reference::parse("x").unwrap_err().to_string();
        assert!(e.contains("COLLECTION/CONTAINER"), "{e}");
    }
}
