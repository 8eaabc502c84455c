//! `{{ name }}` build arguments: finding and substituting them.
//!
//! As in Apptainer, a reference is `{{`, optional blanks, a name of word
//! characters, optional blanks, `}}`. Values come from the caller first, then
//! from the `%arguments` section of the reference's own stage.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::definition::{BuildArgRef, Definition};
use crate::error::{ErrorKind, ParseError};

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: compiling it cannot fail.
    Regex::new(r"\{\{\s*(\w+)\s*\}\}").expect("constant pattern")
});

pub(crate) fn references(def: &Definition) -> Vec<BuildArgRef> {
    let mut out = Vec::new();
    for place in def.lines() {
        let (Some(stage), false) = (place.stage, place.in_arguments) else {
            continue;
        };
        let text = &place.line.text;
        if !text.contains("{{") {
            continue;
        }
        for cap in REFERENCE.captures_iter(text) {
            let (Some(whole), Some(name)) = (cap.get(0), cap.get(1)) else {
                continue;
            };
            out.push(BuildArgRef {
                name: name.as_str().to_owned(),
                stage,
                line: place.number,
                column: text[..whole.start()].chars().count() + 1,
            });
        }
    }
    out
}

pub(crate) fn substitute(
    def: &Definition,
    values: &BTreeMap<String, String>,
) -> Result<Definition, ParseError> {
    let defaults: Vec<BTreeMap<String, String>> = def
        .stages
        .iter()
        .map(|s| {
            s.arguments()
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect()
        })
        .collect();
    let mut out = String::new();
    if def.bom {
        out.push('\u{feff}');
    }
    for place in def.lines() {
        let text = &place.line.text;
        let stage_defaults = place.stage.and_then(|i| defaults.get(i));
        if place.in_arguments || stage_defaults.is_none() || !text.contains("{{") {
            out.push_str(text);
        } else {
            let mut last = 0;
            for cap in REFERENCE.captures_iter(text) {
                let (Some(whole), Some(name)) = (cap.get(0), cap.get(1)) else {
                    continue;
                };
                let name = name.as_str();
                let value = values
                    .get(name)
                    .or_else(|| stage_defaults.and_then(|d| d.get(name)))
                    .ok_or_else(|| {
                        ParseError::new(
                            place.number,
                            text[..whole.start()].chars().count() + 1,
                            ErrorKind::UndefinedBuildArg {
                                name: name.to_owned(),
                            },
                        )
                    })?;
                out.push_str(&text[last..whole.start()]);
                out.push_str(value);
                last = whole.end();
            }
            out.push_str(&text[last..]);
        }
        out.push_str(place.line.ending.as_str());
    }
    Definition::parse(&out)
}
