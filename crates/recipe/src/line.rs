//! Physical lines of a definition file, kept with their exact line endings so
//! that rendering can reproduce the input byte for byte.

/// How a physical line ended in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnding {
    /// Last line of a file without a final newline.
    None,
    Lf,
    CrLf,
}

impl LineEnding {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LineEnding::None => "",
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
        }
    }
}

/// One physical line: its text without the line ending, and the ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) ending: LineEnding,
}

impl Line {
    pub(crate) fn push_raw(&self, out: &mut String) {
        out.push_str(&self.text);
        out.push_str(self.ending.as_str());
    }

    pub(crate) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// A comment line, as Apptainer sees one: `#` after optional leading blanks.
    pub(crate) fn is_comment(&self) -> bool {
        self.text.trim_start().starts_with('#')
    }
}

/// Splits text into lines. Only `\n` ends a line (as Go's `bufio.ScanLines`,
/// which Apptainer uses); a `\r` right before it is part of the ending, a lone
/// `\r` stays in the text. An empty input yields no lines.
pub(crate) fn split_lines(text: &str) -> Vec<Line> {
    let mut lines = Vec::with_capacity(text.len() / 24 + 1);
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (body, ending) = match rest[..i].strip_suffix('\r') {
                    Some(b) => (b, LineEnding::CrLf),
                    None => (&rest[..i], LineEnding::Lf),
                };
                lines.push(Line {
                    text: body.to_owned(),
                    ending,
                });
                rest = &rest[i + 1..];
            }
            None => {
                lines.push(Line {
                    text: rest.to_owned(),
                    ending: LineEnding::None,
                });
                rest = "";
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let mut out = String::new();
        for l in split_lines(text) {
            l.push_raw(&mut out);
        }
        out
    }

    #[test]
    fn keeps_every_byte() {
        for t in ["", "a", "a\n", "a\r\nb", "a\r\r\n\n", "\r", "x\ry\n"] {
            assert_eq!(roundtrip(t), t);
        }
    }

    #[test]
    fn crlf_is_an_ending() {
        let lines = split_lines("a\r\nb");
        assert_eq!(lines[0].text, "a");
        assert_eq!(lines[0].ending, LineEnding::CrLf);
        assert_eq!(lines[1].ending, LineEnding::None);
    }
}
