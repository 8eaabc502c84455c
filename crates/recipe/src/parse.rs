//! Line-by-line parser building the lossless tree. Syntax problems are
//! collected (not returned at once) so that [`crate::Definition::lint`] can
//! report them all; semantic checks live in `validate.rs`.

use crate::definition::{Definition, Stage};
use crate::error::{Diagnostic, ErrorKind, ParseError, Severity};
use crate::header::{Header, HeaderField, HeaderItem};
use crate::line::{Line, split_lines};
use crate::section::{Section, SectionKind, split_first_word};

/// Errors and warnings found so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<ParseError>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn error(&mut self, line: usize, column: usize, kind: ErrorKind) {
        self.errors.push(ParseError::new(line, column, kind));
    }

    pub(crate) fn warn(&mut self, line: usize, column: usize, message: String) {
        self.warnings.push(Diagnostic {
            severity: Severity::Warning,
            line,
            column,
            message,
        });
    }
}

pub(crate) fn parse(text: &str) -> Result<Definition, ParseError> {
    let (mut def, mut report) = parse_tree(text);
    // Syntax errors come first: a semantic error after one is often its echo
    // (a `From` line without colon reads as a missing `From`).
    if report.errors.is_empty() {
        crate::validate::check(&def, &mut report);
    }
    report.errors.sort_by_key(|e| (e.line, e.column));
    if let Some(first) = report.errors.into_iter().next() {
        return Err(first);
    }
    report.warnings.sort_by_key(|w| (w.line, w.column));
    def.warnings = report.warnings;
    Ok(def)
}

pub(crate) fn lint(text: &str) -> Vec<Diagnostic> {
    let (def, mut report) = parse_tree(text);
    crate::validate::check(&def, &mut report);
    let mut all: Vec<Diagnostic> = report.errors.iter().map(Diagnostic::from).collect();
    all.append(&mut report.warnings);
    all.sort_by_key(|d| (d.line, d.column, d.severity));
    all
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first `Bootstrap:`.
    Leading,
    Header,
    Section,
    /// Inside a section that could not be parsed: its lines are dropped
    /// (an error was reported, so the tree is never handed out).
    Skip,
}

/// 1-based column of the first non-blank character.
pub(crate) fn first_column(text: &str) -> usize {
    text.chars().take_while(|c| c.is_whitespace()).count() + 1
}

/// Apptainer splits stages where a line starts with `bootstrap:` (any case,
/// column 1, no blank before the colon); even inside a section body.
fn is_stage_split(text: &str) -> bool {
    text.get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("bootstrap:"))
}

/// A header key line whose key is `Bootstrap` (blanks allowed around the key).
fn is_bootstrap_key(text: &str) -> bool {
    let t = text.trim_start();
    !t.starts_with('#')
        && t.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("bootstrap"))
}

pub(crate) fn parse_tree(text: &str) -> (Definition, Report) {
    let mut report = Report::default();
    let (bom, text) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut def = Definition {
        bom,
        leading: Vec::new(),
        stages: Vec::new(),
        warnings: Vec::new(),
    };
    let mut state = State::Leading;
    let mut continuation = false;
    let mut reported_before = false;
    let mut meaningful = false;

    for (i, line) in split_lines(text).into_iter().enumerate() {
        let n = i + 1;
        if !line.is_blank() && !line.is_comment() {
            meaningful = true;
        }
        let stage_start = match state {
            State::Section | State::Skip => is_stage_split(&line.text),
            State::Leading | State::Header => !continuation && is_bootstrap_key(&line.text),
        };
        if stage_start {
            let field = parse_field(line, n, &mut report, &mut continuation);
            def.stages.push(Stage {
                index: def.stages.len(),
                line: n,
                header: Header { items: vec![field] },
                sections: Vec::new(),
            });
            state = State::Header;
            continue;
        }
        if line.text.trim_start().starts_with('%') {
            continuation = false;
            match def.stages.last_mut() {
                None => {
                    if !reported_before {
                        let found = split_first_word(&line.text).0.to_owned();
                        report.error(
                            n,
                            first_column(&line.text),
                            ErrorKind::BeforeBootstrap { found },
                        );
                        reported_before = true;
                    }
                    def.leading.push(line);
                }
                Some(stage) => match parse_section_header(line, n, &mut report) {
                    Some(section) => {
                        stage.sections.push(section);
                        state = State::Section;
                    }
                    None => state = State::Skip,
                },
            }
            continue;
        }
        match state {
            State::Leading => {
                if !line.is_blank() && !line.is_comment() && !reported_before {
                    let found = line.text.trim().to_owned();
                    report.error(
                        n,
                        first_column(&line.text),
                        ErrorKind::BeforeBootstrap { found },
                    );
                    reported_before = true;
                }
                def.leading.push(line);
            }
            State::Header => {
                // `stage_start` guarantees a stage exists in this state.
                let Some(stage) = def.stages.last_mut() else {
                    continue;
                };
                let items = &mut stage.header.items;
                if line.is_blank() || line.is_comment() {
                    continuation = false;
                    items.push(HeaderItem::Trivia(line));
                } else if continuation {
                    if let Some(HeaderItem::Field(f)) = items
                        .iter_mut()
                        .rev()
                        .find(|i| matches!(i, HeaderItem::Field(_)))
                    {
                        let part = strip_comment(line.text.trim()).0.trim().to_owned();
                        continuation = push_value(&mut f.value, &part);
                        f.comment = None;
                        f.lines.push(line);
                    }
                } else {
                    items.push(parse_field(line, n, &mut report, &mut continuation));
                }
            }
            State::Section => {
                if let Some(section) = def.stages.last_mut().and_then(|s| s.sections.last_mut()) {
                    section.body.push(line);
                }
            }
            State::Skip => {}
        }
    }

    if def.stages.is_empty() && !reported_before {
        let kind = if meaningful {
            ErrorKind::MissingBootstrap
        } else {
            ErrorKind::Empty
        };
        report.error(1, 1, kind);
    }
    (def, report)
}

/// Splits a header line at its first `#` (Apptainer cuts there, even inside a value).
fn strip_comment(t: &str) -> (&str, Option<&str>) {
    match t.find('#') {
        Some(i) => (&t[..i], Some(t[i + 1..].trim())),
        None => (t, None),
    }
}

/// Appends a (continuation) part to a value; returns whether the value
/// continues on the next line. `\` at the end continues; a literal `\n`
/// before it stands for a newline, as in Apptainer.
fn push_value(value: &mut String, part: &str) -> bool {
    value.push_str(part);
    match value.strip_suffix('\\') {
        Some(v) => {
            let v = match v.strip_suffix("\\n") {
                Some(w) => format!("{w}\n"),
                None => v.to_owned(),
            };
            *value = v;
            true
        }
        None => false,
    }
}

fn parse_field(line: Line, n: usize, report: &mut Report, continuation: &mut bool) -> HeaderItem {
    let t = line.text.trim();
    let (content, comment) = strip_comment(t);
    let Some((key, value)) = content.split_once(':') else {
        report.error(
            n,
            first_column(&line.text),
            ErrorKind::HeaderSyntax {
                found: t.to_owned(),
            },
        );
        *continuation = false;
        return HeaderItem::Trivia(line);
    };
    let key = key.trim();
    if key.is_empty() {
        report.error(n, first_column(&line.text), ErrorKind::EmptyHeaderKey);
    }
    let mut v = String::new();
    *continuation = push_value(&mut v, value.trim());
    HeaderItem::Field(HeaderField {
        key: key.to_owned(),
        value: v,
        line: n,
        comment: comment.map(str::to_owned),
        lines: vec![line],
    })
}

/// Cuts a trailing `# comment` off a section header: a `#` at the start or
/// after a blank.
fn strip_section_comment(t: &str) -> &str {
    let mut prev_blank = true;
    for (i, c) in t.char_indices() {
        if c == '#' && prev_blank {
            return t[..i].trim_end();
        }
        prev_blank = c.is_whitespace();
    }
    t
}

fn parse_section_header(line: Line, n: usize, report: &mut Report) -> Option<Section> {
    let col = first_column(&line.text);
    let t = line.text.trim();
    if col > 1 {
        let found = split_first_word(t).0.to_owned();
        report.error(n, col, ErrorKind::IndentedSection { found });
    }
    let rest = strip_section_comment(t.strip_prefix('%').unwrap_or(t));
    let (name, rest) = split_first_word(rest);
    if name.is_empty() {
        report.error(n, col, ErrorKind::EmptySectionName);
        return None;
    }
    let Some(kind) = SectionKind::from_name(name) else {
        report.error(
            n,
            col,
            ErrorKind::UnknownSection {
                name: name.to_owned(),
                expected: SectionKind::expected_list(),
            },
        );
        return None;
    };
    let (app, args) = if kind.is_app() {
        let (app, extra) = split_first_word(rest);
        if app.is_empty() {
            report.error(
                n,
                col,
                ErrorKind::MissingAppName {
                    section: kind.name().to_owned(),
                },
            );
            return None;
        }
        (Some(app.to_owned()), extra)
    } else {
        (None, rest)
    };
    Some(Section {
        kind,
        line: n,
        args: (!args.is_empty()).then(|| args.to_owned()),
        app,
        header: line,
        body: Vec::new(),
    })
}
