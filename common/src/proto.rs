//! The generated controller–agent protocol (`proto/mcp_swarm.proto`).
//!
//! Only the gRPC edges (`controller::service`, `agent::link`) and the
//! conversions in this crate touch these types; everything else works with
//! domain types.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("mcp_swarm.v1");

/// Stands in for a token in `Debug` output: whether one is there, never what.
struct Redacted<'a>(&'a str);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl std::fmt::Debug for VuserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VuserSpec")
            .field("user_index", &self.user_index)
            .field("name", &self.name)
            .field("access_token", &Redacted(&self.access_token))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("activation_rank", &self.activation_rank)
            .finish()
    }
}

impl std::fmt::Debug for TokenUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenUpdate")
            .field("user_name", &self.user_name)
            .field("access_token", &Redacted(&self.access_token))
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_messages_never_show_their_token() {
        let token = "eyJ-a-real-looking-access-token";
        let spec = VuserSpec {
            user_index: 1,
            name: "loadtest_user_1".into(),
            access_token: token.into(),
            expires_at_ms: 5,
            activation_rank: 0,
        };
        let update = TokenUpdate {
            user_name: "loadtest_user_1".into(),
            access_token: token.into(),
            expires_at_ms: 5,
        };
        let message = ControllerMessage {
            body: Some(controller_message::Body::Assignment(Assignment {
                groups: vec![VuserGroup {
                    group_index: 0,
                    users: vec![spec.clone()],
                }],
                ..Default::default()
            })),
        };
        for shown in [
            format!("{spec:?}"),
            format!("{update:?}"),
            format!("{message:?}"),
            format!("{message:#?}"),
        ] {
            assert!(!shown.contains(token), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("loadtest_user_1"), "{shown}");
        }
    }
}
