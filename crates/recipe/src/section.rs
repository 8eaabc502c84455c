//! `%sections`: their kinds, arguments and bodies, and the structured reading
//! of `%labels`, `%files` and `%arguments` bodies.

use serde::Serialize;

use crate::line::Line;

/// Every section Apptainer accepts. Section names are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Arguments,
    Setup,
    Files,
    Environment,
    Post,
    Runscript,
    Startscript,
    Test,
    Labels,
    Help,
    /// Singularity 2's `%pre`; still parsed by Apptainer, which ignores it.
    Pre,
    AppInstall,
    AppRun,
    AppEnv,
    AppLabels,
    AppFiles,
    AppHelp,
    AppTest,
    AppSetup,
    AppStart,
}

const ALL: &[(SectionKind, &str)] = &[
    (SectionKind::Arguments, "arguments"),
    (SectionKind::Setup, "setup"),
    (SectionKind::Files, "files"),
    (SectionKind::Environment, "environment"),
    (SectionKind::Post, "post"),
    (SectionKind::Runscript, "runscript"),
    (SectionKind::Startscript, "startscript"),
    (SectionKind::Test, "test"),
    (SectionKind::Labels, "labels"),
    (SectionKind::Help, "help"),
    (SectionKind::Pre, "pre"),
    (SectionKind::AppInstall, "appinstall"),
    (SectionKind::AppRun, "apprun"),
    (SectionKind::AppEnv, "appenv"),
    (SectionKind::AppLabels, "applabels"),
    (SectionKind::AppFiles, "appfiles"),
    (SectionKind::AppHelp, "apphelp"),
    (SectionKind::AppTest, "apptest"),
    (SectionKind::AppSetup, "appsetup"),
    (SectionKind::AppStart, "appstart"),
];

impl SectionKind {
    /// Looks a section name up, case-insensitively, without the `%`.
    pub fn from_name(name: &str) -> Option<SectionKind> {
        ALL.iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(k, _)| *k)
    }

    /// The lower-case name, without the `%`.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("")
    }

    /// SCIF app sections take an app name: `%apprun <app>`.
    pub fn is_app(self) -> bool {
        self.name().starts_with("app")
    }

    /// Sections whose body is a shell script, so that `-c <shell>` makes sense.
    pub fn is_script(self) -> bool {
        use SectionKind::*;
        matches!(
            self,
            Setup
                | Post
                | Runscript
                | Startscript
                | Test
                | Pre
                | AppInstall
                | AppRun
                | AppTest
                | AppSetup
                | AppStart
        )
    }

    /// `"%setup, %files, …"`, for error messages.
    pub(crate) fn expected_list() -> String {
        ALL.iter()
            .map(|(_, n)| format!("%{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `%section` with its arguments and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub(crate) kind: SectionKind,
    pub(crate) line: usize,
    pub(crate) args: Option<String>,
    pub(crate) app: Option<String>,
    /// The header line as written, for lossless rendering.
    pub(crate) header: Line,
    pub(crate) body: Vec<Line>,
}

impl Section {
    pub fn kind(&self) -> SectionKind {
        self.kind
    }

    /// 1-based line of the `%section` header.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What follows the section name (and app name), trimmed, without a
    /// trailing `# comment`: `-c /bin/bash` for `%post -c /bin/bash`.
    pub fn args(&self) -> Option<&str> {
        self.args.as_deref()
    }

    /// The app of a SCIF app section.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The stage named by `%files from <stage>`.
    pub fn from_stage(&self) -> Option<&str> {
        if self.kind != SectionKind::Files {
            return None;
        }
        let mut words = self.args.as_deref()?.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(w), Some(stage), None) if w.eq_ignore_ascii_case("from") => Some(stage),
            _ => None,
        }
    }

    /// The shell of `-c <shell>`, for script sections.
    pub fn shell(&self) -> Option<&str> {
        let args = self.args.as_deref()?;
        let rest = args.strip_prefix("-c")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let shell = rest.trim();
        (!shell.is_empty()).then_some(shell)
    }

    /// The body with `\n` line endings, each line ending in `\n` (as Apptainer
    /// reads it, so CRLF files give the same script).
    pub fn body(&self) -> String {
        let mut s = String::new();
        for l in &self.body {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }

    /// Body lines with their 1-based line numbers.
    pub fn body_lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.body
            .iter()
            .enumerate()
            .map(move |(i, l)| (self.line + 1 + i, l.text.as_str()))
    }

    /// Lines of a key/value body that mean something: not blank, not `#` comments.
    fn content_lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.body_lines()
            .map(|(n, t)| (n, t.trim()))
            .filter(|(_, t)| !t.is_empty() && !t.starts_with('#'))
    }

    /// `%labels` / `%applabels` lines `Name value…`, in order (later duplicates
    /// win when the build writes them, as in Apptainer).
    pub fn labels(&self) -> Vec<Label> {
        self.content_lines()
            .map(|(line, t)| {
                let (name, value) = split_first_word(t);
                Label {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    line,
                }
            })
            .collect()
    }

    /// `%files` / `%appfiles` lines `src [dest]` (double or single quotes group
    /// a path with spaces).
    pub fn files(&self) -> Vec<FileEntry> {
        let from = self.from_stage().map(str::to_owned);
        self.content_lines()
            .map(|(line, t)| {
                let mut words = shell_words(t).into_iter();
                let src = words.next().unwrap_or_default();
                let dest = words.next();
                FileEntry {
                    src,
                    dest,
                    from: from.clone(),
                    app: self.app.clone(),
                    line,
                }
            })
            .collect()
    }

    /// `%arguments` lines `NAME=value`; lines without `=` are skipped here and
    /// reported by validation.
    pub fn arguments(&self) -> Vec<Argument> {
        self.content_lines()
            .filter_map(|(line, t)| {
                let (name, value) = t.split_once('=')?;
                Some(Argument {
                    name: name.trim().to_owned(),
                    value: unquote(value.trim()).to_owned(),
                    line,
                })
            })
            .collect()
    }
}

/// A `%labels` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A `%files` entry: copy `src` (relative to the recipe's directory unless
/// absolute, or from stage `from`) to `dest` (defaults to `src`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    pub src: String,
    pub dest: Option<String>,
    pub from: Option<String>,
    pub app: Option<String>,
    pub line: usize,
}

/// A build-argument default from `%arguments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Argument {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Splits off the first word; the rest is trimmed.
pub(crate) fn split_first_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Splits a `%files` line into words; quotes group, and are removed.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_quotes() {
        assert_eq!(
            shell_words(r#""my file.txt"  /opt/x 'a b'"#),
            vec!["my file.txt", "/opt/x", "a b"]
        );
        assert_eq!(shell_words("a"), vec!["a"]);
        assert_eq!(shell_words("\"\""), vec![""]);
    }

    #[test]
    fn kinds_round_trip() {
        for (k, n) in ALL {
            assert_eq!(SectionKind::from_name(n), Some(*k));
            assert_eq!(SectionKind::from_name(&n.to_uppercase()), Some(*k));
            assert_eq!(k.name(), *n);
        }
        assert_eq!(SectionKind::from_name("bogus"), None);
    }
}
