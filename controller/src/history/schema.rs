//! The history's schema, versioned with SQLite's `PRAGMA user_version`: each
//! migration takes the file from one version to the next inside one
//! transaction, so a file is never left half-migrated.

use rusqlite::Connection;

/// Migrations in order: the one at index `i` goes from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        target TEXT NOT NULL,
        workload TEXT NOT NULL,
        load_model TEXT NOT NULL,
        n_users INTEGER NOT NULL,
        n_agents INTEGER NOT NULL,
        duration REAL NOT NULL,
        operations INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        throughput REAL NOT NULL,
        p50 REAL NOT NULL,
        p95 REAL NOT NULL,
        p99 REAL NOT NULL,
        error_rate REAL NOT NULL,
        thresholds INTEGER NOT NULL,
        passed INTEGER NOT NULL,
        fell_behind INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        report_path TEXT,
        report TEXT NOT NULL
    );
    CREATE INDEX runs_by_kind ON runs (target, workload, load_model, passed, id);"];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug)]
pub enum MigrateError {
    /// The file is of a newer version than this build knows.
    Newer(i64),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// Brings the file up to `VERSION`.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(MigrateError::Newer(found));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
        tracing::debug!(version = from + 1, "run history migrated");
    }
    Ok(())
}
