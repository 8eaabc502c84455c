//! The parsed definition: stages, each with a header and sections.
//!
//! The tree keeps every physical line, so [`Definition::render`] gives the
//! input back byte for byte; the accessors give the structured view.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::error::{Diagnostic, ParseError};
use crate::header::{Header, HeaderField};
use crate::line::Line;
use crate::section::{Argument, FileEntry, Label, Section, SectionKind};

/// A parsed Singularity/Apptainer definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// A UTF-8 byte-order mark before the first line, kept for rendering.
    pub(crate) bom: bool,
    /// Blank and comment lines before the first `Bootstrap:`.
    pub(crate) leading: Vec<Line>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) warnings: Vec<Diagnostic>,
}

/// One build stage: from a `Bootstrap:` line to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub(crate) index: usize,
    pub(crate) line: usize,
    pub(crate) header: Header,
    pub(crate) sections: Vec<Section>,
}

/// A `{{ name }}` build-argument reference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildArgRef {
    pub name: String,
    /// 0-based index of the stage it appears in.
    pub stage: usize,
    pub line: usize,
    pub column: usize,
}

impl Definition {
    /// Parses and validates a definition; see the crate docs for what is
    /// accepted. Returns the first error (in file order); warnings are kept in
    /// [`Definition::warnings`].
    pub fn parse(text: &str) -> Result<Definition, ParseError> {
        crate::parse::parse(text)
    }

    /// Every error and warning, in file order, without stopping at the first.
    pub fn lint(text: &str) -> Vec<Diagnostic> {
        crate::parse::lint(text)
    }

    /// The stages, in file order (at least one).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The last stage: the one the image is made of.
    pub fn final_stage(&self) -> &Stage {
        // `parse` never returns a definition without a stage.
        &self.stages[self.stages.len() - 1]
    }

    /// The bootstrap agent of the final stage (lower case).
    pub fn bootstrap(&self) -> String {
        self.final_stage().bootstrap()
    }

    /// The base (`From:`) of the final stage.
    pub fn from(&self) -> Option<&str> {
        self.final_stage().from()
    }

    /// Warnings found while parsing (unknown header keys, duplicated sections…).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// `{{ name }}` references outside `%arguments` bodies, in file order.
    pub fn build_args(&self) -> Vec<BuildArgRef> {
        crate::args::references(self)
    }

    /// Substitutes `{{ name }}` references: a caller's value wins over the
    /// stage's `%arguments` default; an undefined one is an error. The result
    /// is parsed again (and validated).
    pub fn with_build_args(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<Definition, ParseError> {
        crate::args::substitute(self, values)
    }

    /// The exact text this definition was parsed from.
    pub fn render(&self) -> String {
        crate::render::lossless(self)
    }

    /// A normalised text: LF endings, canonical key spelling and section names,
    /// no trailing blanks, one blank line between blocks. Parsing it gives the
    /// same structure; rendering that canonically gives the same text.
    pub fn render_canonical(&self) -> String {
        crate::render::canonical(self)
    }
}

impl Stage {
    /// 0-based position among the stages.
    pub fn index(&self) -> usize {
        self.index
    }

    /// 1-based line of its `Bootstrap:`.
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// A header value, case-insensitively (the last one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.header.get(key)
    }

    /// The bootstrap agent, lower case.
    pub fn bootstrap(&self) -> String {
        self.get("bootstrap")
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// `From:`, the base image or path.
    pub fn from(&self) -> Option<&str> {
        self.get("from")
    }

    /// `Stage:`, the name other stages use in `%files from <name>`.
    pub fn name(&self) -> Option<&str> {
        self.get("stage")
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Sections of one kind, in file order.
    pub fn sections_of(&self, kind: SectionKind) -> impl Iterator<Item = &Section> {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    /// The body of a (non-app) section kind; repeated sections are
    /// concatenated, as Apptainer does.
    pub fn script(&self, kind: SectionKind) -> Option<String> {
        concat(self.sections_of(kind).filter(|s| s.app.is_none()))
    }

    /// `%labels` entries in order.
    pub fn labels(&self) -> Vec<Label> {
        self.sections_of(SectionKind::Labels)
            .flat_map(Section::labels)
            .collect()
    }

    /// `%files` entries (host files and `from <stage>` copies) in order.
    pub fn files(&self) -> Vec<FileEntry> {
        self.sections_of(SectionKind::Files)
            .flat_map(Section::files)
            .collect()
    }

    /// `%files` and `%appfiles` entries that copy from the host (no `from`).
    pub fn host_files(&self) -> Vec<FileEntry> {
        self.sections
            .iter()
            .filter(|s| matches!(s.kind, SectionKind::Files | SectionKind::AppFiles))
            .flat_map(Section::files)
            .filter(|f| f.from.is_none())
            .collect()
    }

    /// The `%help` text with surrounding blank lines removed.
    pub fn help(&self) -> Option<String> {
        self.script(SectionKind::Help).map(|h| trim_blank_lines(&h))
    }

    /// `%arguments` defaults in order.
    pub fn arguments(&self) -> Vec<Argument> {
        self.sections_of(SectionKind::Arguments)
            .flat_map(Section::arguments)
            .collect()
    }

    /// SCIF app names in order of first appearance.
    pub fn apps(&self) -> Vec<String> {
        let mut apps: Vec<String> = Vec::new();
        for s in &self.sections {
            if let Some(a) = &s.app {
                if !apps.contains(a) {
                    apps.push(a.clone());
                }
            }
        }
        apps
    }

    /// The sections of one app, in file order.
    pub fn app_sections<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a Section> {
        self.sections
            .iter()
            .filter(move |s| s.app.as_deref() == Some(app))
    }
}

fn concat<'a>(mut it: impl Iterator<Item = &'a Section>) -> Option<String> {
    let mut s = it.next()?.body();
    for more in it {
        s.push_str(&more.body());
    }
    Some(s)
}

fn trim_blank_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.iter().position(|l| !l.trim().is_empty());
    let end = lines.iter().rposition(|l| !l.trim().is_empty());
    match (start, end) {
        (Some(a), Some(b)) => lines[a..=b].join("\n"),
        _ => String::new(),
    }
}

// The JSON form holds the structured view (no raw lines): stable field names
// that golden tests and API clients rely on.
impl Serialize for Definition {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut st = ser.serialize_struct("Definition", 5)?;
        st.serialize_field("bootstrap", &self.bootstrap())?;
        st.serialize_field("from", &self.from())?;
        st.serialize_field("stages", &self.stages)?;
        st.serialize_field("build_args", &self.build_args())?;
        st.serialize_field("warnings", &self.warnings)?;
        st.end()
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let header: Vec<&HeaderField> = self.header.fields().collect();
        let mut st = ser.serialize_struct("Stage", 12)?;
        st.serialize_field("index", &self.index)?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("name", &self.name())?;
        st.serialize_field("bootstrap", &self.bootstrap())?;
        st.serialize_field("from", &self.from())?;
        st.serialize_field("header", &header)?;
        st.serialize_field("sections", &self.sections)?;
        st.serialize_field("labels", &self.labels())?;
        st.serialize_field("files", &self.files())?;
        st.serialize_field("arguments", &self.arguments())?;
        st.serialize_field("help", &self.help())?;
        st.serialize_field("apps", &self.apps())?;
        st.end()
    }
}

impl Serialize for Section {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut st = ser.serialize_struct("Section", 5)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("app", &self.app)?;
        st.serialize_field("args", &self.args)?;
        st.serialize_field("body", &self.body())?;
        st.end()
    }
}

/// Where a physical line sits, for walks over the whole file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinePlace<'a> {
    /// 1-based line number.
    pub(crate) number: usize,
    /// Stage index; `None` for lines before the first `Bootstrap:`.
    pub(crate) stage: Option<usize>,
    /// Inside an `%arguments` body (build arguments are not substituted there).
    pub(crate) in_arguments: bool,
    pub(crate) line: &'a Line,
}

impl Definition {
    /// Every physical line in file order.
    pub(crate) fn lines(&self) -> Vec<LinePlace<'_>> {
        let mut out = Vec::new();
        let mut number = 0;
        let mut push = |stage, in_arguments, line| {
            number += 1;
            out.push(LinePlace {
                number,
                stage,
                in_arguments,
                line,
            });
        };
        for l in &self.leading {
            push(None, false, l);
        }
        for st in &self.stages {
            for item in &st.header.items {
                match item {
                    crate::header::HeaderItem::Field(f) => {
                        for l in &f.lines {
                            push(Some(st.index), false, l);
                        }
                    }
                    crate::header::HeaderItem::Trivia(l) => push(Some(st.index), false, l),
                }
            }
            for s in &st.sections {
                push(Some(st.index), false, &s.header);
                let args = s.kind == SectionKind::Arguments;
                for l in &s.body {
                    push(Some(st.index), args, l);
                }
            }
        }
        out
    }
}
