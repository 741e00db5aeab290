//! Building the checker's errors: a message at a span of the script, and the errors several
//! constructs share (`ctx` metadata is not available).
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

    pub(super) fn ctx_error(&self, span: &Span) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::new(self.source, span.clone(), "`ctx` metadata is not available yet")
                .with_note("Kubernetes metadata (service, pod, namespace, ...) is not collected by Loupe yet"),
        )
    }
}
