//! Drawing a compile error under its source line, rustc-style: the one renderer shared by the
//! compiler (`loupe-pxl`, whose tests and messages use it) and the client (`px`, which gets the
//! fields over the wire and must not link the compiler to draw them).
//!
//! Owns the layout (`error:` line, ` --> origin:line:col`, the source line, carets under the span,
//! `= note:` and `= help:` lines) and byte offset → line:column conversion. Must not know where a
//! diagnostic comes from: no PxL, no protobuf.

use std::fmt::Write as _;
use std::ops::Range;

/// The fields of one diagnostic, borrowed from wherever they live (a compiler `Diagnostic`, a
/// protobuf `CompilerError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caret<'a> {
    /// What went wrong.
    pub message: &'a str,
    /// 1-based line of `span.start`.
    pub line: u32,
    /// 1-based column of `span.start`, in chars.
    pub column: u32,
    /// Byte offsets into the source; clamped to it, so a span from an untrusted peer cannot panic.
    pub span: Range<usize>,
    /// `= note:` lines.
    pub notes: &'a [String],
    /// `= help:` lines.
    pub helps: &'a [String],
}

impl Caret<'_> {
    /// The diagnostic with the offending source line and carets under the span; `origin` names the
    /// script in the ` --> origin:line:col` header.
    pub fn render(&self, source: &str, origin: &str) -> String {
        let line_no = self.line.to_string();
        let pad = " ".repeat(line_no.len());
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = writeln!(out, "{pad}--> {origin}:{}:{}", self.line, self.column);
        let _ = writeln!(out, "{pad} |");
        let start = clamp_to_char_boundary(source, self.span.start);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[line_start..].find('\n').map_or(source.len(), |i| line_start + i);
        let text = source[line_start..line_end].trim_end_matches('\r');
        let _ = writeln!(out, "{line_no} | {text}");
        let end = clamp_to_char_boundary(source, self.span.end.clamp(start, line_end));
        let lead = source[line_start..start].chars().count();
        let width = source[start..end].chars().count().max(1);
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(lead), "^".repeat(width));
        for note in self.notes {
            let _ = writeln!(out, "{pad} = note: {note}");
        }
        for help in self.helps {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// 1-based line and char column of byte offset `at` (clamped to the source).
pub fn line_column(source: &str, at: usize) -> (u32, u32) {
    let at = clamp_to_char_boundary(source, at);
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
}

/// `at`, clamped to the source and moved back to the start of the char it falls in.
pub fn clamp_to_char_boundary(source: &str, at: usize) -> usize {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_chars_from_one() {
        let src = "ab\ncdé f\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        // `f` is after a two-byte char
        assert_eq!(line_column(src, src.find('f').unwrap_or(0)), (2, 5));
    }

    #[test]
    fn render_points_at_the_span() {
        let src = "import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_statu >= 400]\n";
        let at = src.find("resp_statu").unwrap_or(0);
        let helps = ["did you mean `resp_status`?".to_string()];
        let notes = ["columns come from the table".to_string()];
        let c = Caret {
            message: "unknown column `resp_statu` in table `http_events`",
            line: 3,
            column: 12,
            span: at..at + 10,
            notes: &notes,
            helps: &helps,
        };
        let expected = "error: unknown column `resp_statu` in table `http_events`
 --> script.pxl:3:12
  |
3 | df = df[df.resp_statu >= 400]
  |            ^^^^^^^^^^
  = note: columns come from the table
  = help: did you mean `resp_status`?
";
        assert_eq!(c.render(src, "script.pxl"), expected);
    }

    #[test]
    fn a_span_beyond_the_source_or_inside_a_char_does_not_panic() {
        let src = "é = 1\n";
        let c = Caret { message: "m", line: 1, column: 1, span: 1..999, notes: &[], helps: &[] };
        assert_eq!(c.render(src, "s"), "error: m\n --> s:1:1\n  |\n1 | é = 1\n  | ^^^^^\n");
        // Past the end: the caret sits on the (empty) line after the last newline.
        let c = Caret { span: Range { start: 500, end: 2 }, ..c };
        assert_eq!(c.render(src, "s"), "error: m\n --> s:1:1\n  |\n1 | \n  | ^\n");
    }
}
