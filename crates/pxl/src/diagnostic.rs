//! Compiler diagnostics: a message tied to a byte span of the script, rendered rustc-style.
//!
//! Owns [`Diagnostic`] and the "did you mean" suggestion helper; the drawing and the byte-offset →
//! line:column conversion are `loupe_common::caret`'s, shared with `px`. Must not know about the
//! parser or the plan; every phase produces these.

use std::ops::Range;

use loupe_common::caret::{Caret, clamp_to_char_boundary, line_column};

/// One compile error, pointing at the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What went wrong, lowercase, no trailing period.
    pub message: String,
    /// 1-based line of `span.start`.
    pub line: u32,
    /// 1-based column of `span.start`, counted in chars.
    pub column: u32,
    /// Byte offsets into the source.
    pub span: Range<usize>,
    /// Extra context lines (`= note: ...`).
    pub notes: Vec<String>,
    /// Suggestions (`= help: ...`).
    pub helps: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `source`; line and column are computed from the span start.
    pub fn new(source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = clamp_to_char_boundary(source, span.start);
        let end = clamp_to_char_boundary(source, span.end.max(start));
        let (line, column) = line_column(source, start);
        Diagnostic { message: message.into(), line, column, span: start..end, notes: Vec::new(), helps: Vec::new() }
    }

    /// Adds a `= help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.helps.push(help.into());
        self
    }

    /// Adds a `= note:` line.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the diagnostic with the offending source line and carets under the span
    /// (`loupe_common::caret`, the renderer `px` uses on the wire form too).
    ///
    /// `origin` names the script in the ` --> origin:line:col` header.
    pub fn render(&self, source: &str, origin: &str) -> String {
        self.caret().render(source, origin)
    }

    /// The fields the renderer draws.
    pub fn caret(&self) -> Caret<'_> {
        Caret {
            message: &self.message,
            line: self.line,
            column: self.column,
            span: self.span.clone(),
            notes: &self.notes,
            helps: &self.helps,
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Levenshtein distance between two short identifiers.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `wanted`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(wanted, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, if any is close.
pub(crate) fn did_you_mean<'a, I>(wanted: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(wanted, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_the_span() {
        let src = "import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_statu >= 400]\n";
        let at = src.find("resp_statu").unwrap_or(0);
        let d = Diagnostic::new(src, at..at + 10, "unknown column `resp_statu` in table `http_events`")
            .with_help("did you mean `resp_status`?");
        assert_eq!((d.line, d.column), (3, 12));
        let expected = "error: unknown column `resp_statu` in table `http_events`
 --> script.pxl:3:12
  |
3 | df = df[df.resp_statu >= 400]
  |            ^^^^^^^^^^
  = help: did you mean `resp_status`?
";
        assert_eq!(d.render(src, "script.pxl"), expected);
    }

    #[test]
    fn suggestions_need_a_close_match() {
        assert_eq!(edit_distance("resp_statu", "resp_status"), 1);
        assert_eq!(did_you_mean("resp_statu", ["latency", "resp_status"]), Some("did you mean `resp_status`?".into()));
        assert_eq!(did_you_mean("zzz", ["latency"]), None);
    }
}
