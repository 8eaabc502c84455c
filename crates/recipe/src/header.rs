//! The header of a stage: `Key: value` lines before its first `%section`.

use serde::Serialize;

use crate::line::Line;

/// One `Key: value` header field.
///
/// As in Apptainer: keys are case-insensitive, a `#` anywhere starts a
/// comment, and a value ending in `\` continues on the next line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderField {
    /// The key as written (trimmed), e.g. `MirrorURL` or `mirrorurl`.
    pub key: String,
    /// The value, trimmed, without comment; continuation lines joined.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
    #[serde(skip)]
    pub(crate) lines: Vec<Line>,
    /// The inline comment (text after `#`) of a one-line field, for canonical output.
    #[serde(skip)]
    pub(crate) comment: Option<String>,
}

impl HeaderField {
    /// The key in lower case, the form Apptainer compares.
    pub fn name(&self) -> String {
        self.key.to_ascii_lowercase()
    }

    /// The key spelt the usual way (`MirrorURL`, `OSVersion`); unknown keys as written.
    pub fn canonical_key(&self) -> String {
        canonical_key(&self.key)
    }
}

/// A header line: a field, or a blank or comment line kept for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderItem {
    Field(HeaderField),
    Trivia(Line),
}

/// The ordered header lines of one stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub(crate) items: Vec<HeaderItem>,
}

impl Header {
    /// The fields in file order (duplicates included).
    pub fn fields(&self) -> impl Iterator<Item = &HeaderField> {
        self.items.iter().filter_map(|i| match i {
            HeaderItem::Field(f) => Some(f),
            HeaderItem::Trivia(_) => None,
        })
    }

    /// The value of a key, case-insensitively; the last one wins, as in Apptainer.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields()
            .filter(|f| f.key.eq_ignore_ascii_case(key))
            .last()
            .map(|f| f.value.as_str())
    }

    /// The field of a key (the last one), case-insensitively.
    pub fn field(&self, key: &str) -> Option<&HeaderField> {
        self.fields()
            .filter(|f| f.key.eq_ignore_ascii_case(key))
            .last()
    }
}

/// Header keys Apptainer knows (lower case). `otherurl<N>` is checked apart.
/// `gpg` and `confirm` are older agents' keys that recipes in the wild still carry.
const KNOWN_KEYS: &[(&str, &str)] = &[
    ("bootstrap", "Bootstrap"),
    ("from", "From"),
    ("stage", "Stage"),
    ("mirrorurl", "MirrorURL"),
    ("osversion", "OSVersion"),
    ("include", "Include"),
    ("updateurl", "UpdateURL"),
    ("gpg", "GPG"),
    ("registry", "Registry"),
    ("namespace", "Namespace"),
    ("includecmd", "IncludeCmd"),
    ("library", "Library"),
    ("fingerprints", "Fingerprints"),
    ("confirm", "Confirm"),
    ("product", "Product"),
    ("user", "User"),
    ("regcode", "Regcode"),
    ("productpgp", "ProductPGP"),
    ("registerurl", "RegisterURL"),
    ("modules", "Modules"),
    ("confurl", "ConfURL"),
    ("setopt", "SetOpt"),
];

/// Whether Apptainer accepts this header key.
pub fn is_known_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    KNOWN_KEYS.iter().any(|(l, _)| *l == k) || other_url_index(&k).is_some()
}

fn other_url_index(lower: &str) -> Option<&str> {
    let digits = lower.strip_prefix("otherurl")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The usual spelling of a header key; unknown keys are returned as written.
pub fn canonical_key(key: &str) -> String {
    let k = key.to_ascii_lowercase();
    if let Some((_, c)) = KNOWN_KEYS.iter().find(|(l, _)| *l == k) {
        return (*c).to_owned();
    }
    match other_url_index(&k) {
        Some(n) => format!("OtherURL{n}"),
        None => key.to_owned(),
    }
}

/// Bootstrap agents Apptainer and SingularityCE know.
pub const AGENTS: &[&str] = &[
    "docker",
    "docker-daemon",
    "docker-archive",
    "oci",
    "oci-archive",
    "oras",
    "library",
    "shub",
    "localimage",
    "scratch",
    "yum",
    "dnf",
    "debootstrap",
    "zypper",
    "arch",
    "busybox",
    "buildkit",
    "dockerfile",
];

/// Header keys an agent cannot work without (Apptainer fails the build).
pub(crate) fn required_keys(agent: &str) -> &'static [&'static str] {
    match agent {
        "docker" | "docker-daemon" | "docker-archive" | "oci" | "oci-archive" | "oras"
        | "library" | "shub" | "localimage" => &["From"],
        "debootstrap" => &["OSVersion", "MirrorURL"],
        "yum" | "dnf" | "busybox" => &["MirrorURL"],
        _ => &[],
    }
}
