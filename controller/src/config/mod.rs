//! `resolve`: the `RunConfig` of a run, merged from flags and env (clap) over a
//! `--config` TOML file over the defaults, with secrets read from env only.
//! Every check that needs no network happens here or in `run::prepare`.

mod file;
mod login;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use common::Secret;
use common::protocol::LoadModel;

use crate::cli::{LogArgs, StartArgs};
use crate::settings::RunConfig;
use crate::settings::agents::{AgentCommand, AgentsMode, ServerTlsFiles};
use crate::settings::log::LogConfig;
use crate::settings::provider::{
    AdminCredentials, NEXTCLOUD_ADMIN_PASSWORD_ENV, NEXTCLOUD_ADMIN_USER_ENV, ProviderConfig,
    ProviderKind, TargetConfig,
};
use file::{DurationValue, FileConfig, load_file};

/// Users a JSON report lists one by one before every user goes to a CSV file
/// beside it (`--report-users-inline`).
pub const DEFAULT_REPORT_USERS_INLINE: usize = 10_000;
pub const DEFAULT_USER_PREFIX: &str = "loadtest";
pub const DEFAULT_STATE_DIR: &str = ".mcp-swarm";
pub const USERS_PER_AGENT: u32 = 2;
pub const DEFAULT_LISTEN_SPAWN: &str = "127.0.0.1:0";
pub const DEFAULT_LISTEN_NO_SPAWN: &str = "0.0.0.0:7000";
pub const DEFAULT_BROWSER: &str = "/usr/bin/chromium";
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `--http-control` reads the bearer secret of control requests.
pub const HTTP_CONTROL_TOKEN_ENV: &str = "MCP_SWARM_HTTP_CONTROL_TOKEN";

/// Reads the environment; a seam so tests do not touch the process env.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

/// Merges flags/env over the `--config` file over defaults and checks
/// everything that can be checked without the network.
pub fn resolve(args: &StartArgs, env: &dyn Env) -> anyhow::Result<(RunConfig, LogConfig)> {
    let (file, file_path) = match &args.config {
        Some(path) => (load_file(path)?, path.clone()),
        None => (FileConfig::default(), PathBuf::new()),
    };
    let fdur = |v: &Option<DurationValue>, key: &str| -> anyhow::Result<Option<Duration>> {
        v.as_ref().map(|d| d.resolve(key, &file_path)).transpose()
    };

    let log = LogConfig {
        verbose: args.log.verbose || file.verbose.unwrap_or(false),
        format: args.log.log_format.or(file.log_format).unwrap_or_default(),
    };

    let n_agents = args.agents.or(file.agents).unwrap_or(1);
    if n_agents == 0 {
        bail!("--agents must be at least 1");
    }
    let n_users = args
        .users
        .or(file.users)
        .unwrap_or(USERS_PER_AGENT * n_agents);
    if n_users == 0 {
        bail!("--users must be at least 1");
    }
    let duration = args
        .duration
        .or(fdur(&file.duration, "duration")?)
        .unwrap_or(Duration::from_secs(30));
    if duration.is_zero() {
        bail!("--duration must be more than 0 (e.g. -d 30s)");
    }
    let warmup = args
        .warmup
        .or(fdur(&file.warmup, "warmup")?)
        .unwrap_or(Duration::from_secs(5));
    let url = args.url.clone().or(file.url.clone());
    if let Some(u) = &url
        && !matches!(u.scheme(), "http" | "https")
    {
        bail!("--url {u}: must be an http:// or https:// MCP endpoint");
    }
    let target = match url {
        Some(mcp_url) => TargetConfig::External { mcp_url },
        None => TargetConfig::Embedded,
    };

    let http_control = if args.http_control {
        let secret = env.var(HTTP_CONTROL_TOKEN_ENV).with_context(|| {
            format!(
                "--http-control needs the bearer secret of control requests in {HTTP_CONTROL_TOKEN_ENV}: generate one (e.g. `openssl rand -hex 32`)"
            )
        })?;
        if secret.len() < 16 {
            bail!(
                "{HTTP_CONTROL_TOKEN_ENV} is shorter than 16 characters: use a longer secret (e.g. `openssl rand -hex 32`)"
            );
        }
        Some(Secret::new(secret))
    } else {
        None
    };

    let no_spawn = args.no_spawn || file.no_spawn.unwrap_or(false);
    let agents = if no_spawn {
        let secret = env.var(common::CLUSTER_SECRET_ENV).with_context(|| {
            format!(
                "--no-spawn needs the cluster secret in {}: generate one (e.g. `openssl rand -hex 32`) and give the same value to every agent",
                common::CLUSTER_SECRET_ENV
            )
        })?;
        AgentsMode::NoSpawn {
            cluster_secret: Secret::new(secret),
        }
    } else {
        let agent = match args.agent_bin.clone().or(file.agent_bin.clone()) {
            Some(program) => AgentCommand::separate(program),
            None => this_executable()?,
        };
        let regions = match args
            .agent_regions
            .as_deref()
            .or(file.agent_regions.as_deref())
        {
            Some(list) => common::region::parse_region_list(list)
                .with_context(|| format!("--agent-regions {list:?}"))?,
            None => Vec::new(),
        };
        AgentsMode::Spawn { agent, regions }
    };
    let listen = match args.listen.or(file.listen) {
        Some(a) => a,
        None => {
            let default = if no_spawn {
                DEFAULT_LISTEN_NO_SPAWN
            } else {
                DEFAULT_LISTEN_SPAWN
            };
            default.parse().context("default listen address")?
        }
    };

    let think_time = args
        .think_time
        .or(fdur(&file.think_time, "think_time")?)
        .unwrap_or(Duration::ZERO);
    let load = match args.rate.or(file.rate) {
        Some(rate) if !(rate.is_finite() && rate > 0.0) => {
            bail!("--rate {rate}: must be a positive number of workflow starts per second")
        }
        Some(rate_per_sec) => LoadModel::Open { rate_per_sec },
        None => LoadModel::Closed { think_time },
    };
    let (n_users, duration, warmup, load, stages) =
        match args.stages.clone().or(file.stages.clone()) {
            None => (n_users, duration, warmup, load, Vec::new()),
            Some(text) => {
                let s = crate::stages::resolve(
                    &text,
                    crate::stages::Others {
                        duration: args.duration.or(fdur(&file.duration, "duration")?),
                        warmup: args.warmup.or(fdur(&file.warmup, "warmup")?),
                        rate: args.rate.or(file.rate),
                        users: args.users.or(file.users),
                        default_users: USERS_PER_AGENT * n_agents,
                        think_time,
                    },
                )?;
                (s.n_users, s.duration, s.warmup, s.load, s.stages)
            }
        };

    let tenants = args.tenants.or(file.tenants).unwrap_or(0);
    if tenants > n_users {
        bail!(
            "--tenants {tenants} is more than the {n_users} users: every tenant needs a user (raise --users)"
        );
    }
    let mut thresholds = file.thresholds.clone();
    thresholds.extend(args.thresholds.iter().cloned());

    let login = login::resolve(args, &file, &file_path, env)?;

    let provider_kind = args.provider.or(file.provider).unwrap_or(match target {
        TargetConfig::Embedded => ProviderKind::Embedded,
        TargetConfig::External { .. } => ProviderKind::Nextcloud,
    });
    let provider = match provider_kind {
        ProviderKind::Embedded => {
            if target != TargetConfig::Embedded {
                bail!(
                    "--provider embedded only works with the embedded mock target (no --url); use --provider nextcloud or static"
                );
            }
            ProviderConfig::Embedded
        }
        ProviderKind::Nextcloud => {
            let base_url = args.nextcloud_url.clone().or(file.nextcloud_url).context(
                "--provider nextcloud needs --nextcloud-url (the Nextcloud base URL, e.g. https://cloud.example.com)",
            )?;
            ProviderConfig::Nextcloud {
                base_url,
                admin: admin_from_env(env)?,
            }
        }
        ProviderKind::Static => {
            let users_file = args.users_file.clone().or(file.users_file).context(
                "--provider static needs --users-file (a CSV of username,password lines)",
            )?;
            ProviderConfig::Static { users_file }
        }
    };

    let tls = match (
        args.tls_cert.clone().or(file.tls_cert),
        args.tls_key.clone().or(file.tls_key),
        args.tls_client_ca.clone().or(file.tls_client_ca),
    ) {
        (Some(cert), Some(key), client_ca) => Some(ServerTlsFiles {
            cert,
            key,
            client_ca,
        }),
        (None, None, None) => None,
        (Some(_), None, _) => {
            bail!("--tls-cert needs --tls-key (the certificate's private key)")
        }
        (None, Some(_), _) => {
            bail!("--tls-key needs --tls-cert (the certificate it belongs to)")
        }
        (None, None, Some(_)) => bail!(
            "--tls-client-ca needs --tls-cert and --tls-key: client certificates (mTLS) are checked over TLS"
        ),
    };

    let cleanup = if args.no_cleanup {
        false
    } else {
        args.cleanup.or(file.cleanup).unwrap_or(true)
    };

    let max_in_flight = args.max_in_flight.or(file.max_in_flight);
    if max_in_flight == Some(0) {
        bail!(
            "--max-in-flight 0 would start nothing: give at least 1, or leave it out for 4096 per agent"
        );
    }
    let mut config = RunConfig {
        max_in_flight,
        n_users,
        n_agents,
        duration,
        warmup,
        target,
        output: args.output.clone().or(file.output),
        html: args.html.clone().or(file.html),
        report_users_inline: args
            .report_users_inline
            .or(file.report_users_inline)
            .unwrap_or(DEFAULT_REPORT_USERS_INLINE),
        junit: args.junit.clone().or(file.junit),
        history: None,
        workload: args.workload.clone().or(file.workload),
        user_prefix: args
            .user_prefix
            .clone()
            .or(file.user_prefix)
            .unwrap_or_else(|| DEFAULT_USER_PREFIX.into()),
        cleanup,
        agents,
        listen,
        http: args.http.or(file.http),
        http_control,
        http_linger: args
            .http_linger
            .or(fdur(&file.http_linger, "http_linger")?)
            .unwrap_or(Duration::ZERO),
        agent_timeout: args
            .agent_timeout
            .or(fdur(&file.agent_timeout, "agent_timeout")?)
            .unwrap_or(Duration::from_secs(120)),
        scenario_file: args.scenario.clone().or(file.scenario),
        load,
        stages,
        tenants,
        thresholds,
        login,
        provider,
        state_dir: args
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        request_timeout: args
            .request_timeout
            .or(fdur(&file.request_timeout, "request_timeout")?)
            .unwrap_or(Duration::from_secs(30)),
        mcp_version: args
            .mcp_version
            .or(file.mcp_version)
            .unwrap_or_default()
            .choice(),
        elicitation: args
            .elicitation
            .or(file.elicitation)
            .unwrap_or_default()
            .answer(),
        on_agent_loss: args
            .on_agent_loss
            .or(file.on_agent_loss)
            .unwrap_or_default(),
        tls,
    };
    validate_prefix(&config.user_prefix)?;
    config.history = (!args.no_history).then(|| {
        args.history
            .clone()
            .unwrap_or_else(|| config.state_dir.join(crate::history::FILE_NAME))
    });
    Ok((config, log))
}

/// The running executable as `<exe> agent …`.
fn this_executable() -> anyhow::Result<AgentCommand> {
    let program = std::env::current_exe()
        .context("cannot find this executable to run it as an agent; pass --agent-bin")?;
    Ok(AgentCommand::as_subcommand(program))
}

/// Admin credentials of the Nextcloud OCS API, from env only.
pub fn admin_from_env(env: &dyn Env) -> anyhow::Result<AdminCredentials> {
    let password = env.var(NEXTCLOUD_ADMIN_PASSWORD_ENV).with_context(|| {
        format!("the nextcloud provider needs the admin password in {NEXTCLOUD_ADMIN_PASSWORD_ENV} (and the user in {NEXTCLOUD_ADMIN_USER_ENV}, default admin)")
    })?;
    Ok(AdminCredentials {
        user: env
            .var(NEXTCLOUD_ADMIN_USER_ENV)
            .unwrap_or_else(|| "admin".into()),
        password: Secret::new(password),
    })
}

/// User names become URL path segments and search terms: keep them plain.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("--user-prefix {prefix:?}: use letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

pub fn log_config(args: &LogArgs) -> LogConfig {
    LogConfig {
        verbose: args.verbose,
        format: args.log_format.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|v| v.to_string())
        }
    }

    fn args(f: impl FnOnce(&mut StartArgs)) -> StartArgs {
        let mut a = StartArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn defaults() {
        let (c, _) = resolve(&args(|a| a.agents = Some(3)), &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.n_users, 6);
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.warmup, Duration::from_secs(5));
        assert!(c.cleanup);
        assert_eq!(c.target, TargetConfig::Embedded);
        assert!(matches!(c.provider, ProviderConfig::Embedded));
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert_eq!(
            c.load,
            LoadModel::Closed {
                think_time: Duration::ZERO
            }
        );
    }

    #[test]
    fn file_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "users = 10\nduration = \"1m\"\nwarmup = 2\nthreshold = [\"error_rate<1%\"]\n",
        )
        .unwrap();
        let a = args(|a| {
            a.config = Some(path.clone());
            a.users = Some(4);
        });
        let (c, _) = resolve(&a, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.n_users, 4);
        assert_eq!(c.duration, Duration::from_secs(60));
        assert_eq!(c.warmup, Duration::from_secs(2));
        assert_eq!(c.thresholds, vec!["error_rate<1%".to_string()]);
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "userz = 10\n").unwrap();
        let err = resolve(
            &args(|a| a.config = Some(path.clone())),
            &MapEnv(HashMap::new()),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("userz"), "{err:#}");
    }

    #[test]
    fn stages_set_the_length_and_refuse_duration() {
        let a = args(|a| a.stages = Some("3s:2,3s:4,3s:0".into()));
        let (c, _) = resolve(&a, &MapEnv(HashMap::new())).unwrap();
        assert_eq!(c.n_users, 4, "the peak");
        assert_eq!(c.duration, Duration::from_secs(9));
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.stages.len(), 3);
        let a = args(|a| {
            a.stages = Some("3s:2,3s:4,3s:0".into());
            a.duration = Some(Duration::from_secs(30));
        });
        let err = resolve(&a, &MapEnv(HashMap::new())).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("--stages 3s:2,3s:4,3s:0 and --duration 30s cannot be used together"),
            "{err:#}"
        );
    }

    #[test]
    fn no_spawn_needs_secret() {
        let err = resolve(&args(|a| a.no_spawn = true), &MapEnv(HashMap::new())).unwrap_err();
        assert!(format!("{err:#}").contains("MCP_SWARM_CLUSTER_SECRET"));
        let env = MapEnv(HashMap::from([("MCP_SWARM_CLUSTER_SECRET", "s")]));
        let (c, _) = resolve(&args(|a| a.no_spawn = true), &env).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:7000");
    }

    #[test]
    fn nextcloud_needs_url_and_admin() {
        let a = args(|a| a.url = Some("http://x/mcp".parse().unwrap()));
        let err = resolve(&a, &MapEnv(HashMap::new())).unwrap_err();
        assert!(format!("{err:#}").contains("--nextcloud-url"));
        let a = args(|a| {
            a.url = Some("http://x/mcp".parse().unwrap());
            a.nextcloud_url = Some("http://x".parse().unwrap());
        });
        let err = resolve(&a, &MapEnv(HashMap::new())).unwrap_err();
        assert!(format!("{err:#}").contains("NEXTCLOUD_ADMIN_PASSWORD"));
    }
}
