//! The bounded set of ways an MCP call or step can fail. A failed call is
//! data: it is counted under one of these kinds, never keyed by its message.

use crate::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The tool answered with `isError: true`.
    Tool,
    /// A JSON-RPC error response.
    JsonRpc,
    Http4xx,
    Http5xx,
    /// HTTP 401/403 from the resource server.
    Auth,
    Timeout,
    /// Connection refused or reset, closed stream, protocol violation.
    Transport,
    /// The call succeeded but an `expect` of the step did not hold.
    Expectation,
    /// A template needed a value an earlier step did not produce.
    Skipped,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Tool,
        ErrorKind::JsonRpc,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::Auth,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::Expectation,
        ErrorKind::Skipped,
    ];

    /// The name used in reports (`tool_error`, `http_5xx`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Tool => "tool_error",
            ErrorKind::JsonRpc => "jsonrpc_error",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Auth => "auth",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Expectation => "expectation",
            ErrorKind::Skipped => "skipped",
        }
    }

    pub fn to_proto(self) -> proto::ErrorKind {
        match self {
            ErrorKind::Tool => proto::ErrorKind::Tool,
            ErrorKind::JsonRpc => proto::ErrorKind::JsonRpc,
            ErrorKind::Http4xx => proto::ErrorKind::Http4xx,
            ErrorKind::Http5xx => proto::ErrorKind::Http5xx,
            ErrorKind::Auth => proto::ErrorKind::Auth,
            ErrorKind::Timeout => proto::ErrorKind::Timeout,
            ErrorKind::Transport => proto::ErrorKind::Transport,
            ErrorKind::Expectation => proto::ErrorKind::Expectation,
            ErrorKind::Skipped => proto::ErrorKind::Skipped,
        }
    }

    /// `None` for `UNSPECIFIED` or a kind from a newer peer.
    pub fn from_proto(value: i32) -> Option<Self> {
        match proto::ErrorKind::try_from(value).ok()? {
            proto::ErrorKind::Unspecified => None,
            proto::ErrorKind::Tool => Some(ErrorKind::Tool),
            proto::ErrorKind::JsonRpc => Some(ErrorKind::JsonRpc),
            proto::ErrorKind::Http4xx => Some(ErrorKind::Http4xx),
            proto::ErrorKind::Http5xx => Some(ErrorKind::Http5xx),
            proto::ErrorKind::Auth => Some(ErrorKind::Auth),
            proto::ErrorKind::Timeout => Some(ErrorKind::Timeout),
            proto::ErrorKind::Transport => Some(ErrorKind::Transport),
            proto::ErrorKind::Expectation => Some(ErrorKind::Expectation),
            proto::ErrorKind::Skipped => Some(ErrorKind::Skipped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_proto(kind.to_proto() as i32), Some(kind));
        }
        assert_eq!(ErrorKind::from_proto(0), None);
        assert_eq!(ErrorKind::from_proto(999), None);
    }
}
