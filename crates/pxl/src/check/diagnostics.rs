//! Building the checker's errors: a message at a span of the script.
//!
//! Owns only construction; the wording of most messages stays beside the rule that raises them.
//! Must not decide what is an error.

use super::Checker;
use crate::diagnostic::Diagnostic;
use crate::syntax::Span;

impl Checker<'_> {
    pub(super) fn err(&self, span: &Span, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(Diagnostic::new(self.source, span.clone(), message))
    }
}
