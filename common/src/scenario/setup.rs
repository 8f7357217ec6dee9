//! A scenario's `setup:`: what each user must do once, before any load,
//! for the server to serve them. The Nextcloud MCP server in its OAuth
//! mode is the model: a tool returns a URL the user must open, log into and
//! grant (Login Flow v2), and another tool says when that is done. Any
//! server with a step of that shape declares it the same way.
//!
//! ```yaml
//! setup:
//!   provision:
//!     when_tool: nc_auth_provision_access   # only if the server lists it
//!     check: { tool: nc_auth_check_status, done: { "$.status": provisioned } }
//!     start: { tool: nc_auth_provision_access, url: "$.login_url" }
//!     visit: nextcloud_login_flow           # log in as the user, grant access
//!     poll: { every: 1s, within: 60s }
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::jsonpath::JsonPath;

/// The per-user provisioning step, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Provision {
    /// Runs only when the server's `tools/list` has this tool.
    pub when_tool: String,
    /// Tells whether the user is provisioned: `done` holds on its result.
    pub check_tool: String,
    pub check_args: Value,
    pub done: Vec<(JsonPath, Value)>,
    /// Starts provisioning; its result holds the URL at `url`.
    pub start_tool: String,
    pub start_args: Value,
    pub url: JsonPath,
    /// How the URL is visited.
    pub visit: Visit,
    /// How often `check_tool` is polled after the visit, and for how long.
    pub every: Duration,
    pub within: Duration,
}

/// How a provisioning URL is visited, as the user it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// Nextcloud's Login Flow v2 pages: log in with the user's password,
    /// then "Grant access".
    NextcloudLoginFlow,
}

impl Visit {
    pub const NAMES: [&str; 1] = ["nextcloud_login_flow"];
}

/// The longest `poll.within` a scenario may ask for.
const MAX_WITHIN: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSetup {
    pub provision: Option<RawProvision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvision {
    pub when_tool: String,
    pub check: RawCall,
    pub start: RawCall,
    pub visit: String,
    #[serde(default)]
    pub poll: Option<RawPoll>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCall {
    pub tool: String,
    #[serde(default)]
    pub args: Option<Value>,
    /// `check` only.
    #[serde(default)]
    pub done: Option<serde_json::Map<String, Value>>,
    /// `start` only.
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoll {
    pub every: Option<String>,
    pub within: Option<String>,
}

/// Compiles `setup.provision`; errors are (field path, message).
pub(crate) fn compile(raw: RawProvision) -> Result<Provision, (Vec<&'static str>, String)> {
    let tool = |t: &str, at: &'static str| {
        if t.trim().is_empty() {
            Err((
                vec![at, "tool"],
                format!("`setup.provision.{at}.tool` is empty; name the MCP tool"),
            ))
        } else {
            Ok(t.to_owned())
        }
    };
    if raw.when_tool.trim().is_empty() {
        return Err((vec!["when_tool"], "`setup.provision.when_tool` is empty; name the tool whose presence asks for provisioning".into()));
    }
    let args = |a: Option<Value>, at: &'static str| match a {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err((
            vec![at, "args"],
            format!("`setup.provision.{at}.args` must be a mapping"),
        )),
    };
    let Some(done_raw) = raw.check.done else {
        return Err((vec!["check"], "`setup.provision.check` needs `done:`, the JSON paths and values that say a user is provisioned".into()));
    };
    if done_raw.is_empty() {
        return Err((
            vec!["check", "done"],
            "`setup.provision.check.done` is empty".into(),
        ));
    }
    let mut done = Vec::new();
    for (path, value) in done_raw {
        let p = JsonPath::parse(&path)
            .map_err(|e| (vec!["check", "done"], format!("`{path}`: {e}")))?;
        done.push((p, value));
    }
    let Some(url) = raw.start.url else {
        return Err((
            vec!["start"],
            "`setup.provision.start` needs `url:`, the JSON path of the URL in its result".into(),
        ));
    };
    let url = JsonPath::parse(&url).map_err(|e| (vec!["start", "url"], format!("`{url}`: {e}")))?;
    let visit = match raw.visit.as_str() {
        "nextcloud_login_flow" => Visit::NextcloudLoginFlow,
        other => {
            return Err((
                vec!["visit"],
                format!("unknown `visit: {other}`; known: {:?}", Visit::NAMES),
            ));
        }
    };
    let duration = |text: Option<String>, default: Duration, at: &'static str| match text {
        None => Ok(default),
        Some(t) => crate::duration::parse_duration(&t)
            .map_err(|e| (vec!["poll", at], format!("`poll.{at}: {t}`: {e}"))),
    };
    let poll = raw.poll.unwrap_or(RawPoll {
        every: None,
        within: None,
    });
    let every = duration(poll.every, Duration::from_secs(1), "every")?;
    let within = duration(poll.within, Duration::from_secs(60), "within")?;
    if every.is_zero() || within < every || within > MAX_WITHIN {
        return Err((
            vec!["poll"],
            format!(
                "`poll` must poll at least once a while (every > 0, every ≤ within ≤ {}s)",
                MAX_WITHIN.as_secs()
            ),
        ));
    }
    Ok(Provision {
        when_tool: raw.when_tool,
        check_tool: tool(&raw.check.tool, "check")?,
        check_args: args(raw.check.args, "check")?,
        done,
        start_tool: tool(&raw.start.tool, "start")?,
        start_args: args(raw.start.args, "start")?,
        url,
        visit,
        every,
        within,
    })
}

impl Provision {
    /// `done` holds on a check result (values compare as in `expect.json`:
    /// numbers and strings by their text).
    pub fn is_done(&self, result: &Value) -> bool {
        self.done.iter().all(|(path, want)| {
            path.lookup(result).is_some_and(|got| {
                got == want || matches!((got, want), (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) if *a == b.to_string())
            })
        })
    }

    /// The URL in a start result.
    pub fn url_in<'v>(&self, result: &'v Value) -> Option<&'v str> {
        self.url.lookup(result)?.as_str()
    }
}
