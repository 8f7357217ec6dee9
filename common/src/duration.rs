//! Parsing of the durations users type: `500ms`, `30s`, `5m`, `1h`, and a bare
//! number meaning seconds (`-d 300`), as in the framework we replace.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {input:?}: use a number of seconds (30, 0.5) or a value with a unit (500ms, 30s, 5m, 1h)"
)]
pub struct DurationError {
    pub input: String,
}

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let err = || DurationError {
        input: input.to_owned(),
    };
    if s.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(err());
        }
        return Duration::try_from_secs_f64(secs).map_err(|_| err());
    }
    humantime::parse_duration(s).map_err(|_| err())
}

/// Formats a duration the way users write them (`30s`, `1m 30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(input).ok(), expected, "input {input:?}");
    }

    #[test]
    fn parses_what_users_type() {
        check("300", Some(Duration::from_secs(300)));
        check("0.5", Some(Duration::from_millis(500)));
        check("500ms", Some(Duration::from_millis(500)));
        check("30s", Some(Duration::from_secs(30)));
        check("5m", Some(Duration::from_secs(300)));
        check("1h", Some(Duration::from_secs(3600)));
        check(" 2s ", Some(Duration::from_secs(2)));
        check("", None);
        check("-1", None);
        check("abc", None);
        check("5 parsecs", None);
        check("NaN", None);
    }
}
