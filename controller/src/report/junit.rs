//! JUnit XML for CI systems: one `<testcase>` per threshold (`start
//! --junit`) or per compared figure (`compare --junit`), a `<failure>` with
//! the measured value and the limit when it did not hold. The layout is the
//! common one (Ant/Jenkins/Surefire): `testsuites` › `testsuite` ›
//! `testcase` › `failure`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use common::report::{Report, ThresholdResult};

/// One test case; `failure` is `None` when it passed.
#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    pub classname: String,
    pub name: String,
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// One line: measured value and limit.
    pub message: String,
    /// The longer explanation, as the element's text.
    pub detail: String,
}

/// XML text or attribute value: the five entities escaped, and characters
/// XML 1.0 cannot hold (control characters) left out.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One suite of `cases` as a JUnit XML document.
pub fn render(suite: &str, timestamp: &str, time_seconds: f64, cases: &[TestCase]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_suite(&mut out, suite, timestamp, time_seconds, cases);
    out
}

fn write_suite(
    out: &mut String,
    suite: &str,
    timestamp: &str,
    time_seconds: f64,
    cases: &[TestCase],
) -> std::fmt::Result {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="{0}" tests="{1}" failures="{failures}" errors="0" time="{time_seconds:.3}">"#,
        escape_xml(suite),
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="{0}" tests="{1}" failures="{failures}" errors="0" skipped="0" time="{time_seconds:.3}" timestamp="{2}">"#,
        escape_xml(suite),
        cases.len(),
        escape_xml(timestamp)
    )?;
    for case in cases {
        let open = format!(
            r#"    <testcase classname="{}" name="{}" time="0""#,
            escape_xml(&case.classname),
            escape_xml(&case.name)
        );
        match &case.failure {
            None => writeln!(out, "{open}/>")?,
            Some(f) => {
                writeln!(out, "{open}>")?;
                writeln!(
                    out,
                    r#"      <failure message="{}" type="regression">{}</failure>"#,
                    escape_xml(&f.message),
                    escape_xml(&f.detail)
                )?;
                writeln!(out, "    </testcase>")?;
            }
        }
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

/// The report's thresholds as test cases (`classname` `thresholds`).
pub fn threshold_cases(report: &Report) -> Vec<TestCase> {
    report.thresholds.iter().map(threshold_case).collect()
}

fn threshold_case(t: &ThresholdResult) -> TestCase {
    let failure = (!t.passed).then(|| {
        let measured = match t.observed {
            Some(v) => format!("measured {v}{}", t.unit),
            None => format!("not measured ({})", t.note.as_deref().unwrap_or("no value")),
        };
        Failure {
            message: format!("{measured}; limit {}", t.expression),
            detail: format!("The threshold `{}` did not hold: {measured}.", t.expression),
        }
    });
    TestCase {
        classname: "mcp-swarm.thresholds".to_owned(),
        name: t.expression.clone(),
        failure,
    }
}

/// An RFC 3339 time as the schema's `timestamp` wants it: to the second,
/// without a zone (`2026-12-01T10:00:00`).
pub fn timestamp(rfc3339: &str) -> String {
    rfc3339.chars().take(19).collect()
}

/// Writes `xml` to `path`.
pub fn write(path: &Path, xml: &str) -> anyhow::Result<()> {
    std::fs::write(path, xml).with_context(|| format!("writing JUnit XML to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped_and_control_characters_dropped() {
        assert_eq!(
            escape_xml("a<b & \"c\" 'd'\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;"
        );
    }

    #[test]
    fn failures_are_counted_on_the_suite() {
        let cases = [
            TestCase {
                classname: "c".into(),
                name: "ok".into(),
                failure: None,
            },
            TestCase {
                classname: "c".into(),
                name: "p95<1ms".into(),
                failure: Some(Failure {
                    message: "measured 0.3s; limit p95<1ms".into(),
                    detail: "d".into(),
                }),
            },
        ];
        let xml = render("suite", &timestamp("2026-12-01T10:00:00.123Z"), 1.5, &cases);
        assert!(xml.contains(r#"timestamp="2026-12-01T10:00:00">"#), "{xml}");
        assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
        assert!(xml.contains(r#"name="p95&lt;1ms""#), "{xml}");
    }
}
