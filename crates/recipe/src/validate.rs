//! Semantic checks on a parsed tree. What Apptainer rejects is an error;
//! what it accepts but is likely a mistake is a warning (see the crate docs).

use std::collections::{BTreeMap, HashMap};

use crate::definition::{Definition, Stage};
use crate::error::ErrorKind;
use crate::header::{AGENTS, HeaderItem, is_known_key, required_keys};
use crate::parse::{Report, first_column};
use crate::section::{Section, SectionKind};

pub(crate) fn check(def: &Definition, report: &mut Report) {
    let mut stage_names: BTreeMap<String, usize> = BTreeMap::new();
    for stage in &def.stages {
        check_header(stage, report);
        check_sections(def, stage, &stage_names, report);
        if let Some(f) = stage.header.field("stage") {
            let name = f.value.clone();
            if !name.is_empty() {
                if let Some(&first_line) = stage_names.get(&name) {
                    report.error(f.line, 1, ErrorKind::DuplicateStage { name, first_line });
                } else {
                    stage_names.insert(name, f.line);
                }
            }
        }
    }
    check_build_args(def, report);
}

fn check_header(stage: &Stage, report: &mut Report) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in &stage.header.items {
        let HeaderItem::Field(f) = item else { continue };
        let name = f.name();
        if name.is_empty() {
            continue;
        }
        if !is_known_key(&f.key) {
            report.warn(
                f.line,
                1,
                format!(
                    "unknown header key `{}`: kept, but Apptainer rejects keys it does not know",
                    f.key
                ),
            );
        }
        if let Some(first) = seen.insert(name, f.line) {
            report.warn(
                f.line,
                1,
                format!(
                    "header key `{}` is set again (first at line {first}): the last value wins",
                    f.key
                ),
            );
        }
        if f.value.is_empty() && f.name() == "stage" {
            report.error(
                f.line,
                1,
                ErrorKind::EmptyHeaderValue { key: f.key.clone() },
            );
        }
    }

    let Some(b) = stage.header.field("bootstrap") else {
        return;
    };
    let column = b.lines.first().map_or(1, |l| value_column(&l.text));
    let agent = b.value.to_ascii_lowercase();
    if agent.is_empty() {
        report.error(b.line, column, ErrorKind::EmptyBootstrap);
        return;
    }
    if !AGENTS.contains(&agent.as_str()) {
        report.error(
            b.line,
            column,
            ErrorKind::UnknownAgent {
                agent: b.value.clone(),
                expected: AGENTS.join(", "),
            },
        );
        return;
    }
    for key in required_keys(&agent) {
        if stage.header.field(key).is_none() {
            report.error(
                stage.line,
                1,
                ErrorKind::MissingHeaderKey {
                    agent: agent.clone(),
                    key: (*key).to_owned(),
                },
            );
        } else if stage.get(key).is_some_and(str::is_empty) {
            let line = stage.header.field(key).map_or(stage.line, |f| f.line);
            report.error(
                line,
                1,
                ErrorKind::EmptyHeaderValue {
                    key: (*key).to_owned(),
                },
            );
        }
    }
}

/// 1-based column just after `key:` and its blanks.
fn value_column(text: &str) -> usize {
    match text.find(':') {
        Some(i) => {
            let after = &text[i + 1..];
            text[..=i].chars().count() + first_column(after)
        }
        None => 1,
    }
}

fn check_sections(
    def: &Definition,
    stage: &Stage,
    earlier: &BTreeMap<String, usize>,
    report: &mut Report,
) {
    let mut first_of: HashMap<(SectionKind, Option<&str>), &Section> = HashMap::new();
    for s in &stage.sections {
        let name = s.kind.name();
        match s.kind {
            SectionKind::Files => check_files_args(def, stage, s, earlier, report),
            SectionKind::AppFiles => {}
            SectionKind::Pre => report.warn(
                s.line,
                1,
                "`%pre` is a Singularity 2 section that Apptainer ignores: use %setup".to_owned(),
            ),
            SectionKind::Arguments => check_arguments(s, report),
            _ => {}
        }
        if let Some(args) = s.args() {
            if s.kind.is_script() {
                if s.shell().is_none() {
                    report.warn(
                        s.line,
                        1,
                        format!("`%{name}` arguments `{args}` are not `-c <shell>`: Apptainer ignores them"),
                    );
                }
            } else if !matches!(s.kind, SectionKind::Files) {
                report.warn(
                    s.line,
                    1,
                    format!("`%{name}` takes no arguments: `{args}` is ignored"),
                );
            }
        }
        // Apptainer merges repeated %files (and %appfiles) on purpose; other
        // repeated sections are concatenated, which is rarely what was meant.
        if matches!(s.kind, SectionKind::Files | SectionKind::AppFiles) {
            continue;
        }
        let key = (s.kind, s.app());
        match first_of.get(&key) {
            None => {
                first_of.insert(key, s);
            }
            Some(first) => match (first.args(), s.args()) {
                (Some(a), Some(b)) if a != b => report.error(
                    s.line,
                    1,
                    ErrorKind::ConflictingSectionArgs {
                        section: section_label(s),
                        first: a.to_owned(),
                        first_line: first.line,
                        second: b.to_owned(),
                    },
                ),
                _ => report.warn(
                    s.line,
                    1,
                    format!(
                        "`%{}` is repeated (first at line {}): Apptainer concatenates the bodies",
                        section_label(s),
                        first.line
                    ),
                ),
            },
        }
    }
}

fn section_label(s: &Section) -> String {
    match s.app() {
        Some(app) => format!("{} {app}", s.kind.name()),
        None => s.kind.name().to_owned(),
    }
}

fn check_files_args(
    def: &Definition,
    stage: &Stage,
    s: &Section,
    earlier: &BTreeMap<String, usize>,
    report: &mut Report,
) {
    let Some(args) = s.args() else { return };
    let Some(from) = s.from_stage() else {
        report.error(
            s.line,
            1,
            ErrorKind::FilesArgs {
                found: args.to_owned(),
            },
        );
        return;
    };
    if earlier.contains_key(from) {
        return;
    }
    let later = def
        .stages
        .get(stage.index..)
        .unwrap_or_default()
        .iter()
        .find(|st| st.name() == Some(from));
    if let Some(later) = later {
        report.error(
            s.line,
            1,
            ErrorKind::LaterStage {
                stage: from.to_owned(),
                stage_line: later.line,
            },
        );
        return;
    }
    let expected = if stage.index == 0 {
        "an earlier stage, but this is the first stage".to_owned()
    } else if earlier.is_empty() {
        "the `Stage:` name of an earlier stage, but no earlier stage has one".to_owned()
    } else {
        let names: Vec<String> = earlier.keys().map(|k| format!("`{k}`")).collect();
        format!("one of {}", names.join(", "))
    };
    report.error(
        s.line,
        1,
        ErrorKind::UnknownStage {
            stage: from.to_owned(),
            expected,
        },
    );
}

fn is_arg_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn check_arguments(s: &Section, report: &mut Report) {
    for (line, text) in s.body_lines() {
        let t = text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ok = t
            .split_once('=')
            .is_some_and(|(k, _)| is_arg_name(k.trim()));
        if !ok {
            report.error(
                line,
                first_column(text),
                ErrorKind::ArgumentSyntax {
                    found: t.to_owned(),
                },
            );
        }
    }
}

fn check_build_args(def: &Definition, report: &mut Report) {
    let refs = crate::args::references(def);
    for r in refs {
        let Some(stage) = def.stages.get(r.stage) else {
            continue;
        };
        if !stage.arguments().iter().any(|a| a.name == r.name) {
            report.warn(
                r.line,
                r.column,
                format!(
                    "build argument `{}` has no default in this stage's %arguments: the caller must give a value",
                    r.name
                ),
            );
        }
    }
}
