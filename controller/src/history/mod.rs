//! The run history: every finished run's headline figures and report, in
//! one SQLite file (`<state-dir>/history.sqlite3` unless `--history FILE`),
//! keyed by its *kind* — target, workload and load model — so `controller
//! history` can list runs and `controller compare --baseline last-passing`
//! can find the last run of the same kind that met its thresholds.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward
//! on open; a file from a newer build is refused, a corrupt or locked one is
//! an error naming the file and what to do. Recording never stands between a
//! run and its JSON report: the report is written first, and a failure here
//! is a warning.

mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::report::Report;
use rusqlite::{Connection, OptionalExtension, params};

/// How long a write waits for another process holding the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The target of runs against the embedded mock, in the history.
const EMBEDDED: &str = "embedded mock target";
/// The history's file under the state directory.
pub const FILE_NAME: &str = "history.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "run history {path}: cannot open it ({source}); check the directory exists and is writable, or give another file with --history"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "run history {path} is not a readable SQLite database ({source}); move it aside (its runs are lost to `controller history`, their JSON reports are not)"
    )]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("run history {path} is locked by another process for over {secs} s; try again once it is done", secs = BUSY_TIMEOUT.as_secs())]
    Locked { path: PathBuf },
    #[error(
        "run history {path} has schema version {found}, newer than this build's {supported}: use a newer mcp-swarm, or another file with --history"
    )]
    Newer {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("run history {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("run history {path}: a stored report does not read back ({source})")]
    Report {
        path: PathBuf,
        source: common::report::ReportError,
    },
}

/// What makes two runs comparable: the same target, workload and load model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub target: String,
    pub workload: String,
    pub load_model: String,
}

impl Kind {
    pub fn of(report: &Report) -> Kind {
        Kind::new(
            &report.run.target,
            report.run.embedded_target,
            &report.run.workload,
            &report.run.load_model,
        )
    }

    pub fn new(target: &str, embedded: bool, workload: &str, load_model: &str) -> Kind {
        Kind {
            // The embedded mock listens on a new port every run.
            target: if embedded {
                EMBEDDED.to_owned()
            } else {
                without_userinfo(target)
            },
            workload: workload.to_owned(),
            load_model: load_model.to_owned(),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} ({})",
            self.workload, self.target, self.load_model
        )
    }
}

/// `target` with any user name or password taken out of the URL.
fn without_userinfo(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => target.to_owned(),
    }
}

/// One recorded run, as `controller history` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub started_at: String,
    pub kind: Kind,
    pub n_users: u64,
    pub n_agents: u64,
    pub duration: f64,
    pub operations: u64,
    pub failed: u64,
    pub throughput: f64,
    pub p95: f64,
    pub error_rate: f64,
    pub thresholds: u64,
    pub passed: bool,
    pub fell_behind: bool,
    pub report_path: Option<String>,
}

pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (creating) the history at `path` and migrates it.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing directory is reported by the open below.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| HistoryError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut history = History {
            conn,
            path: path.to_owned(),
        };
        history
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| history.error(e))?;
        schema::migrate(&mut history.conn).map_err(|e| match e {
            schema::MigrateError::Newer(found) => HistoryError::Newer {
                path: path.to_owned(),
                found,
                supported: schema::VERSION,
            },
            schema::MigrateError::Sql(e) => history.error(e),
        })?;
        Ok(history)
    }

    /// The error for `e`, named for what a user can do about it.
    fn error(&self, e: rusqlite::Error) -> HistoryError {
        let path = self.path.clone();
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                HistoryError::Locked { path }
            }
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                HistoryError::Corrupt { path, source: e }
            }
            _ => HistoryError::Sql { path, source: e },
        }
    }

    /// Records a finished run's report (its `users` section left out: the
    /// per-user figures stay in the JSON report) and where it was written.
    pub fn record(&self, report: &Report, report_path: Option<&Path>) -> Result<i64, HistoryError> {
        let kind = Kind::of(report);
        let s = &report.summary;
        // Failures among successes and failures (conflicts are neither).
        let decided = s.total_operations.saturating_sub(s.conflicted_operations);
        let error_rate = if decided > 0 {
            s.failed_operations as f64 * 100.0 / decided as f64
        } else {
            0.0
        };
        let mut stored = report.clone();
        stored.users.clear();
        let json = stored
            .to_json_pretty()
            .map_err(|source| HistoryError::Report {
                path: self.path.clone(),
                source,
            })?;
        self.conn
            .execute(
                "INSERT INTO runs (started_at, target, workload, load_model, n_users, n_agents,
                    duration, operations, failed, throughput, p50, p95, p99, error_rate,
                    thresholds, passed, fell_behind, verdict, report_path, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                params![
                    report.run.started_at,
                    kind.target,
                    kind.workload,
                    kind.load_model,
                    report.run.n_users as i64,
                    report.run.n_agents as i64,
                    s.duration,
                    s.total_operations as i64,
                    s.failed_operations as i64,
                    s.throughput_per_sec,
                    s.latency.median,
                    s.latency.p95,
                    s.latency.p99,
                    error_rate,
                    report.thresholds.len() as i64,
                    report.thresholds_passed(),
                    report.verdict.fell_behind,
                    report.verdict.text,
                    report_path.map(|p| p.display().to_string()),
                    json,
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest runs first, at most `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], row)
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// The newest run of `kind` that met its thresholds, other than the one
    /// that started at `except_started_at`, with its stored report.
    pub fn last_passing(
        &self,
        kind: &Kind,
        except_started_at: &str,
    ) -> Result<Option<(RunRow, Report)>, HistoryError> {
        let found: Option<(RunRow, String)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT {ROW_COLUMNS}, report FROM runs
                     WHERE target = ?1 AND workload = ?2 AND load_model = ?3 AND passed
                       AND started_at <> ?4
                     ORDER BY id DESC LIMIT 1"
                ),
                params![
                    kind.target,
                    kind.workload,
                    kind.load_model,
                    except_started_at
                ],
                |r| Ok((row(r)?, r.get::<_, String>(17)?)),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        found
            .map(|(row, json)| {
                Report::from_json(&json)
                    .map(|report| (row, report))
                    .map_err(|source| HistoryError::Report {
                        path: self.path.clone(),
                        source,
                    })
            })
            .transpose()
    }
}

impl History {
    /// p95 and throughput of the last `limit` runs of `kind`, oldest first.
    pub fn trend(
        &self,
        kind: &Kind,
        limit: usize,
    ) -> Result<Vec<crate::report::html::TrendPoint>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT started_at, p95, throughput FROM runs
                 WHERE target = ?1 AND workload = ?2 AND load_model = ?3
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(
                params![
                    kind.target,
                    kind.workload,
                    kind.load_model,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(crate::report::html::TrendPoint {
                        started_at: r.get(0)?,
                        p95: r.get(1)?,
                        throughput: r.get(2)?,
                    })
                },
            )
            .map_err(|e| self.error(e))?;
        let mut points = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        points.reverse();
        Ok(points)
    }
}

const ROW_COLUMNS: &str = "id, started_at, target, workload, load_model, n_users, n_agents, \
     duration, operations, failed, throughput, p95, error_rate, thresholds, passed, fell_behind, \
     report_path";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started_at: r.get(1)?,
        kind: Kind {
            target: r.get(2)?,
            workload: r.get(3)?,
            load_model: r.get(4)?,
        },
        n_users: r.get::<_, i64>(5)?.max(0) as u64,
        n_agents: r.get::<_, i64>(6)?.max(0) as u64,
        duration: r.get(7)?,
        operations: r.get::<_, i64>(8)?.max(0) as u64,
        failed: r.get::<_, i64>(9)?.max(0) as u64,
        throughput: r.get(10)?,
        p95: r.get(11)?,
        error_rate: r.get(12)?,
        thresholds: r.get::<_, i64>(13)?.max(0) as u64,
        passed: r.get(14)?,
        fell_behind: r.get(15)?,
        report_path: r.get(16)?,
    })
}

/// The `controller history` table.
pub fn render(rows: &[RunRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No run recorded yet.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>4}  {:<24}  {:<20}  {:<26}  {:>7}  {:>6}  {:>10}  {:>9}  {:>7}  {:<10}  verdict",
        "#",
        "started",
        "workload",
        "load model",
        "users",
        "agents",
        "ops/s",
        "p95",
        "errors",
        "thresholds"
    );
    for r in rows {
        let thresholds = match (r.thresholds, r.passed) {
            (0, _) => "none",
            (_, true) => "PASS",
            (_, false) => "FAIL",
        };
        let verdict = if r.fell_behind {
            "fell behind"
        } else {
            "kept up"
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<24}  {:<20}  {:<26}  {:>7}  {:>6}  {:>10.1}  {:>8.1}ms  {:>6.2}%  {:<10}  {}",
            r.id,
            r.started_at,
            clip(&r.kind.workload, 20),
            clip(&r.kind.load_model, 26),
            r.n_users,
            r.n_agents,
            r.throughput,
            r.p95 * 1e3,
            r.error_rate,
            thresholds,
            verdict
        );
    }
    out
}

/// `text` cut to `n` characters (with `…`).
fn clip(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(n.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests;
