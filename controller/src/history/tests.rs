use common::report::ThresholdResult;

use super::*;

/// A report of `workload` started at `second`, passing its one threshold or not.
fn report(workload: &str, second: u64, passed: bool) -> Report {
    let mut input = crate::report::ReportInput::default();
    input.run.target = "http://admin:pw@127.0.0.1:8080/mcp".to_owned();
    input.run.workload = workload.to_owned();
    input.run.load_model = "closed, think time 0s".to_owned();
    input.run.started_at =
        std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + second);
    input.run.duration = Duration::from_secs(10);
    let mut r = crate::report::build_report(&input);
    r.thresholds = vec![ThresholdResult {
        expression: "p95<1s".to_owned(),
        passed,
        observed: Some(0.5),
        unit: "s".to_owned(),
        note: None,
    }];
    r
}

#[test]
fn runs_are_recorded_listed_newest_first_and_the_last_passing_of_a_kind_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join(FILE_NAME);
    let h = History::open(&path).unwrap();
    let first = h.record(&report("mixed", 1, true), None).unwrap();
    let _failing = h
        .record(&report("mixed", 2, false), Some(Path::new("/tmp/r2.json")))
        .unwrap();
    let _other_kind = h.record(&report("sharing", 3, true), None).unwrap();
    let newest = report("mixed", 4, true);

    let rows = h.list(10).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].kind.workload, "sharing", "newest first");
    assert_eq!(rows[1].report_path.as_deref(), Some("/tmp/r2.json"));
    assert!(!rows[1].passed);
    assert_eq!(
        rows[0].kind.target, "http://127.0.0.1:8080/mcp",
        "no credentials stored"
    );
    assert_eq!(h.list(1).unwrap().len(), 1);

    let (row, base) = h
        .last_passing(&Kind::of(&newest), &newest.run.started_at)
        .unwrap()
        .expect("a passing run of the kind");
    assert_eq!(
        row.id, first,
        "the failing run and the other kind are skipped"
    );
    assert_eq!(base.run.workload, "mixed");
    // A run is never its own baseline.
    let itself = report("mixed", 1, true);
    assert!(
        h.last_passing(&Kind::of(&itself), &itself.run.started_at)
            .unwrap()
            .is_none()
    );

    let text = render(&rows);
    assert!(text.contains("FAIL") && text.contains("PASS"), "{text}");
    assert!(text.contains("kept up"), "{text}");
    assert!(!text.contains("pw@"), "{text}");
}

#[test]
fn a_reopened_file_keeps_its_runs_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    History::open(&path)
        .unwrap()
        .record(&report("mixed", 1, true), None)
        .unwrap();
    let h = History::open(&path).unwrap();
    assert_eq!(h.list(10).unwrap().len(), 1);
    let version: i64 = h
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[test]
fn a_newer_or_corrupt_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.sqlite3");
    {
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", schema::VERSION + 1)
            .unwrap();
    }
    let err = History::open(&newer).err().expect("refused").to_string();
    assert!(err.contains("newer than this build"), "{err}");

    let corrupt = dir.path().join("corrupt.sqlite3");
    std::fs::write(
        &corrupt,
        b"this is not a database, just some bytes of a report............",
    )
    .unwrap();
    let err = History::open(&corrupt).err().expect("refused").to_string();
    assert!(err.contains("not a readable SQLite database"), "{err}");
    assert!(err.contains("corrupt.sqlite3"), "{err}");
}
