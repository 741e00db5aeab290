//! One writer of the Prometheus text exposition format (0.0.4) for every process's `/metrics`: metric
//! families with their HELP and TYPE lines, samples with escaped label values.
//!
//! Owns the format only; what is counted belongs to each service.

use std::fmt::Write as _;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows (name it `*_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Accumulates metric families into exposition text.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// An empty exposition.
    pub fn new() -> Self {
        Writer::default()
    }

    /// One family: its HELP and TYPE lines, then one sample per `(labels, value)`, where `labels` are
    /// `(name, value)` pairs (values are escaped here).
    pub fn family<'a, L>(&mut self, name: &str, kind: Kind, help: &str, samples: impl IntoIterator<Item = (L, u64)>)
    where
        L: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.out.push_str(name);
            let mut first = true;
            for (label, text) in labels {
                self.out.push(if first { '{' } else { ',' });
                first = false;
                let _ = write!(self.out, "{label}=\"{}\"", escape(text));
            }
            if !first {
                self.out.push('}');
            }
            let _ = writeln!(self.out, " {value}");
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) {
        self.family(name, kind, help, [([] as [(&str, &str); 0], value)]);
    }

    /// The text so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaped_labels() {
        let mut w = Writer::new();
        w.family("x_total", Kind::Counter, "Things.", [([("route", "/a\"b\\c\nd"), ("status", "2xx")], 3)]);
        w.single("y", Kind::Gauge, "Now.", 7);
        assert_eq!(
            w.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{route=\"/a\\\"b\\\\c\\nd\",status=\"2xx\"} 3\n\
             # HELP y Now.\n# TYPE y gauge\ny 7\n"
        );
    }
}
