//! Turning a tree back into text: exactly as parsed, or normalised.

use crate::definition::Definition;
use crate::header::HeaderItem;
use crate::line::Line;

/// Every line as it was read, endings included.
pub(crate) fn lossless(def: &Definition) -> String {
    let mut out = String::new();
    if def.bom {
        out.push('\u{feff}');
    }
    for place in def.lines() {
        place.line.push_raw(&mut out);
    }
    out
}

/// Blocks (leading comments, each header, each section) separated by one
/// blank line; LF endings; no trailing blanks; a final newline.
pub(crate) fn canonical(def: &Definition) -> String {
    let mut blocks: Vec<Vec<String>> = Vec::new();

    let leading: Vec<String> = def
        .leading
        .iter()
        .filter(|l| !l.is_blank())
        .map(|l| l.text.trim().to_owned())
        .collect();
    if !leading.is_empty() {
        blocks.push(leading);
    }

    for stage in &def.stages {
        let mut header = Vec::new();
        for item in &stage.header.items {
            match item {
                HeaderItem::Field(f) if f.lines.len() == 1 => {
                    let mut s = format!("{}: {}", f.canonical_key(), f.value);
                    if let Some(c) = &f.comment {
                        s = format!("{} # {c}", s.trim_end());
                    }
                    header.push(s.trim_end().to_owned());
                }
                // A continued value keeps its lines, which hold the `\` marks.
                HeaderItem::Field(f) => {
                    for (i, l) in f.lines.iter().enumerate() {
                        let t = l.text.trim();
                        if i == 0 {
                            let rest = t.split_once(':').map_or("", |(_, v)| v.trim());
                            header.push(
                                format!("{}: {rest}", f.canonical_key())
                                    .trim_end()
                                    .to_owned(),
                            );
                        } else {
                            header.push(format!("    {t}"));
                        }
                    }
                }
                HeaderItem::Trivia(l) if !l.is_blank() => header.push(l.text.trim().to_owned()),
                HeaderItem::Trivia(_) => {}
            }
        }
        blocks.push(header);

        for s in &stage.sections {
            let mut head = format!("%{}", s.kind.name());
            for part in [s.app.as_deref(), s.args.as_deref()].into_iter().flatten() {
                head.push(' ');
                head.push_str(part);
            }
            let mut block = vec![head];
            block.extend(trimmed_body(&s.body));
            blocks.push(block);
        }
    }

    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for line in block {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Body lines without trailing blanks, and without blank lines at either end.
fn trimmed_body(body: &[Line]) -> Vec<String> {
    let lines: Vec<&str> = body.iter().map(|l| l.text.trim_end()).collect();
    let start = lines.iter().position(|l| !l.is_empty());
    let end = lines.iter().rposition(|l| !l.is_empty());
    match (start, end) {
        (Some(a), Some(b)) => lines[a..=b].iter().map(|s| (*s).to_owned()).collect(),
        _ => Vec::new(),
    }
}
