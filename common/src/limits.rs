//! Bounds on everything decoded from the network, in one place: the largest
//! gRPC message each side accepts, and the counts and lengths checked in a
//! decoded message before anything is built from it (histograms, maps).
//! A message past a bound is refused whole, with an error naming the bound.

/// Largest message an agent sends and the controller accepts. Final reports
/// are chunked under 1 MiB; an interval carries only the series and users
/// that changed, a few KiB each.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Largest message the controller sends and an agent accepts: assignment
/// chunks are packed under 1 MiB, plus the scenario source in chunk 0.
pub const MAX_CONTROLLER_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest scenario source an assignment may carry.
pub const MAX_SCENARIO_BYTES: usize = 4 * 1024 * 1024;
/// Series in one message: workflows × steps × tools of a scenario, with room.
pub const MAX_SERIES_PER_MESSAGE: usize = 4096;
/// Users in one message (an interval of a big agent, a final-report chunk).
pub const MAX_USERS_PER_MESSAGE: usize = 200_000;
/// Distinct tools one user's statistics may name.
pub const MAX_TOOLS_PER_USER: usize = 256;
/// Error-count entries of one series or user (there are ~10 kinds).
pub const MAX_ERROR_ENTRIES: usize = 64;
/// Longest workflow, step, tool or user name.
pub const MAX_NAME_BYTES: usize = 512;
/// Session failure samples one `Ready` may carry.
pub const MAX_FAILURE_SAMPLES: usize = 16;
/// Longest failure message (a `Ready` sample, an `AgentFailure`).
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 4096;
/// The most workflows one agent keeps in flight in the open model, whatever
/// the run's `--max-in-flight` asks (each holds its task and its calls).
pub const MAX_IN_FLIGHT_PER_AGENT: usize = 1_000_000;
/// Most chunks an assignment or a final report may announce (1 MiB each).
pub const MAX_CHUNKS: u32 = 4096;

/// A decoded message past one of these bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    #[error("{what}: {n} is more than the {max} accepted")]
    TooMany {
        what: &'static str,
        n: usize,
        max: usize,
    },
    #[error("{what} of {len} bytes is longer than the {max} accepted")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// `Err` when `n` items of `what` are more than `max`.
pub fn check_count(what: &'static str, n: usize, max: usize) -> Result<(), BoundError> {
    if n > max {
        return Err(BoundError::TooMany { what, n, max });
    }
    Ok(())
}

/// `Err` when `text` (a `what`) is longer than `max` bytes.
pub fn check_len(what: &'static str, text: &str, max: usize) -> Result<(), BoundError> {
    if text.len() > max {
        return Err(BoundError::TooLong {
            what,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lengths() {
        assert!(check_count("series", 3, 3).is_ok());
        assert_eq!(
            check_count("series", 4, 3).unwrap_err().to_string(),
            "series: 4 is more than the 3 accepted"
        );
        assert!(check_len("name", "abc", 3).is_ok());
        assert!(check_len("name", "abcd", 3).is_err());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let check = |text: &str, max: usize, expected: &str| {
            assert_eq!(truncate(text, max), expected, "{text:?} at {max}");
        };
        check("short", 10, "short");
        check("exactly", 7, "exactly");
        check("longer text", 6, "longer…");
        check("héllo", 2, "h…");
        check("", 0, "");
    }
}
