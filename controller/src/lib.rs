//! The mcp-swarm controller: provisions users, logs them in, plans and drives
//! the run over gRPC, merges what agents measure into the report.
//!
//! Code map: `settings/` (the run's settings as plain data, at the bottom),
//! `cli` and `config/` (flags, env, TOML → `settings::RunConfig`), `target`
//! (embedded mock or `--url`), `provision/` (users and their journal),
//! `login/` (discovery, DCR, login methods), `plan` (pure: users → groups →
//! agents), `registry`, `service` + `convert` (the gRPC edge),
//! `messages` (what crosses it, as domain types), `spawn` (local agents),
//! `tokens` (refresh), `run/` (the orchestration), `report/` and
//! `thresholds` (the output).

pub mod cli;
pub mod config;
pub mod convert;
pub mod history;
pub mod login;
pub mod messages;
pub mod plan;
pub mod provision;
pub mod registry;
pub mod report;
pub mod run;
pub mod service;
pub mod settings;
pub mod setup;
pub mod spawn;
pub mod stages;
pub mod target;
pub mod thresholds;
pub mod tls;
pub mod tokens;

use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::{CleanupArgs, Cli, Command};
use crate::config::ProcessEnv;
use crate::settings::log::{LogConfig, LogFormat};

/// Runs one command to its exit code; `shutdown` is the process's root token
/// (cancelled on Ctrl-C).
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Start(args) => {
            let (config, log) = config::resolve(&args, &ProcessEnv)?;
            init_tracing(log);
            let prepared = run::prepare(config)?;
            run::execute(prepared, shutdown).await
        }
        Command::Capacity(args) => {
            let (mut config, log) = config::resolve(&args.start, &ProcessEnv)?;
            init_tracing(log);
            let search = run::capacity::configure(&mut config, &args)?;
            let mut prepared = run::prepare(config)?;
            prepared.capacity = Some(search);
            run::execute(prepared, shutdown).await
        }
        Command::Cleanup(args) => {
            init_tracing(config::log_config(&args.log));
            cleanup(&args).await
        }
        Command::Report(args) => {
            init_tracing(config::log_config(&args.log));
            let report = report::read_json(&args.file)?;
            println!("{}", report::render_console(&report));
            if let Some(path) = &args.html {
                report::write_html(&report, path)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare(args) => {
            init_tracing(config::log_config(&args.log));
            compare(&args)
        }
        Command::History(args) => {
            init_tracing(config::log_config(&args.log));
            history_list(&args)
        }
    }
}

/// `controller compare`: the table on stdout, exit 3 on a regression.
fn compare(args: &cli::CompareArgs) -> anyhow::Result<ExitCode> {
    use report::compare;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let parse = |text: &str, path: &std::path::Path| {
        report::Report::from_json(text)
            .with_context(|| format!("reading report {}", path.display()))
    };
    let (base, new, base_name, new_path) = match (args.baseline, args.reports.as_slice()) {
        (None, [base_path, new_path]) => {
            let (base_text, new_text) = (read(base_path)?, read(new_path)?);
            compare::check_versions(&base_text, &new_text)?;
            (
                parse(&base_text, base_path)?,
                parse(&new_text, new_path)?,
                base_path.display().to_string(),
                new_path,
            )
        }
        (Some(cli::Baseline::LastPassing), [new_path]) => {
            let new = parse(&read(new_path)?, new_path)?;
            let path = history_path(&args.file);
            let kind = history::Kind::of(&new);
            let found = history::History::open(&path)?.last_passing(&kind, &new.run.started_at)?;
            let Some((row, base)) = found else {
                anyhow::bail!(
                    "no run of the same kind ({kind}) that met its thresholds is recorded in {}: record one first (controller start records every run unless --no-history)",
                    path.display()
                );
            };
            let name = format!("run #{} of {} (last passing)", row.id, row.started_at);
            (base, new, name, new_path)
        }
        (None, _) => {
            anyhow::bail!("give two reports, BASE and NEW, or one with --baseline last-passing")
        }
        (Some(_), _) => {
            anyhow::bail!("--baseline takes the base from the run history: give only NEW")
        }
    };
    let new_name = new_path.display().to_string();
    let comparison = compare::compare(&base, &new, args.tolerance)?;
    print!("{}", compare::render(&comparison, &base_name, &new_name));
    if let Some(path) = &args.junit {
        let xml = report::junit::render(
            "mcp-swarm compare",
            &report::junit::timestamp(&new.run.started_at),
            0.0,
            &compare::junit_cases(&comparison),
        );
        report::junit::write(path, &xml)?;
    }
    if comparison.regressed() {
        return Ok(ExitCode::from(run::EXIT_THRESHOLD));
    }
    Ok(ExitCode::SUCCESS)
}

/// `controller cleanup`: the journal first (every location it lists users
/// at), then by prefix through the provider (`--nextcloud-url`).
async fn cleanup(args: &CleanupArgs) -> anyhow::Result<ExitCode> {
    use crate::settings::provider::ProviderKind;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| config::DEFAULT_USER_PREFIX.into());
    config::validate_prefix(&prefix)?;
    match args.provider.unwrap_or(ProviderKind::Nextcloud) {
        ProviderKind::Nextcloud => {}
        ProviderKind::Embedded => {
            anyhow::bail!(
                "--provider embedded: the embedded target's users vanish with its run; nothing to clean up"
            )
        }
        ProviderKind::Static => {
            anyhow::bail!("--provider static: users from --users-file are never created or deleted")
        }
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| config::DEFAULT_STATE_DIR.into());
    let journal = if state_dir.is_dir() {
        Some(provision::Journal::open(&state_dir)?)
    } else {
        None
    };
    let mut bases: Vec<url::Url> = args.nextcloud_url.iter().cloned().collect();
    if let Some(j) = &journal {
        let pending = j.pending().context("reading the user journal")?;
        for location in pending.keys() {
            let base = location
                .strip_suffix(provision::OCS_USERS_PATH)
                .and_then(|b| url::Url::parse(b).ok())
                .with_context(|| {
                    format!(
                        "the user journal {} lists users at {location:?}, which is not an OCS users URL",
                        j.path().display()
                    )
                })?;
            if !bases.iter().any(|b| same_base(b, &base)) {
                bases.push(base);
            }
        }
    }
    if bases.is_empty() {
        anyhow::bail!(
            "nothing to clean up from the journal in --state-dir {}: pass --nextcloud-url (admin from NEXTCLOUD_ADMIN_USER/NEXTCLOUD_ADMIN_PASSWORD) to delete `{}` users by prefix",
            state_dir.display(),
            provision::name_prefix(&prefix)
        );
    }
    let admin = config::admin_from_env(&ProcessEnv)?;
    for base in &bases {
        let provider = provision::Provider::Ocs(provision::OcsProvider::new(
            base,
            admin.user.clone(),
            admin.password.clone(),
        )?);
        run::users::cleanup_command(&provider, journal.as_ref(), &prefix, args.dry_run)
            .await
            .with_context(|| format!("cleaning up at {base}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn same_base(a: &url::Url, b: &url::Url) -> bool {
    a.as_str().trim_end_matches('/') == b.as_str().trim_end_matches('/')
}

/// Logs to stderr: `info` for our crates (`debug` with -v), `warn` for the
/// rest, unless `RUST_LOG` says otherwise. Safe to call twice (tests).
pub fn init_tracing(log: LogConfig) {
    use tracing_subscriber::EnvFilter;
    let ours = if log.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,controller={ours},observe={ours},mock={ours},chromiumoxide=error"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The run history a `--history`/`--state-dir` pair names.
fn history_path(file: &cli::HistoryFile) -> std::path::PathBuf {
    file.history.clone().unwrap_or_else(|| {
        file.state_dir
            .clone()
            .unwrap_or_else(|| config::DEFAULT_STATE_DIR.into())
            .join(history::FILE_NAME)
    })
}

/// `controller history`: the recorded runs, newest first.
fn history_list(args: &cli::HistoryArgs) -> anyhow::Result<ExitCode> {
    let path = history_path(&args.file);
    if !path.exists() {
        anyhow::bail!(
            "no run history at {}: runs are recorded by `controller start` (give --state-dir or --history where they were)",
            path.display()
        );
    }
    let rows = history::History::open(&path)?.list(args.limit)?;
    print!("{}", history::render(&rows));
    Ok(ExitCode::SUCCESS)
}
