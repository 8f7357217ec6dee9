//! The JSON report against the committed schema (controller/report.schema.json):
//! a realistic report validates, drift is caught, and JSON round-trips.

mod report_support;

use common::report::Report;
use controller::report::{build_report, read_json, write_json};
use serde_json::Value;

fn schema() -> Value {
    let text = include_str!("../report.schema.json");
    serde_json::from_str(text).expect("schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("schema compiles")
}

fn errors(instance: &Value) -> Vec<String> {
    validator()
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

fn realistic_json() -> Value {
    let report = build_report(&report_support::realistic_input());
    serde_json::to_value(&report).expect("report serializes")
}

#[test]
fn realistic_report_matches_the_schema() {
    let json = realistic_json();
    assert_eq!(errors(&json), Vec::<String>::new());
    // The fixture covers every section, so the schema is exercised in full.
    for key in [
        "workflows",
        "users",
        "timeseries",
        "thresholds",
        "agents",
        "generator",
    ] {
        let non_empty = match &json[key] {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        assert!(non_empty, "{key} is empty in the fixture");
    }
}

#[test]
fn empty_report_matches_the_schema() {
    let report = build_report(&controller::report::ReportInput::default());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(errors(&json), Vec::<String>::new());
}

#[test]
fn drift_is_caught() {
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation); 6] = [
        ("missing top-level key", |j| {
            j.as_object_mut().unwrap().remove("auth");
        }),
        ("missing summary key", |j| {
            j["summary"].as_object_mut().unwrap().remove("total_users");
        }),
        ("unknown key in a workflow", |j| {
            j["workflows"]["note_share"]["p95"] = Value::from(1.0);
        }),
        ("latency not a number", |j| {
            j["users"]["loadtest_user_1"]["latency"]["p95"] = Value::from("fast");
        }),
        ("unknown error kind", |j| {
            j["workflows"]["note_share"]["errors_breakdown"]["oops"] = Value::from(1);
        }),
        ("rate over 100", |j| {
            j["baseline"]["success_rate"] = Value::from(100.5);
        }),
    ];
    for (what, mutate) in cases {
        let mut json = realistic_json();
        mutate(&mut json);
        assert!(!validator().is_valid(&json), "{what}: should not validate");
    }
}

#[test]
fn json_round_trips() {
    let report = build_report(&report_support::realistic_input());
    let text = report.to_json_pretty().unwrap();
    let back = Report::from_json(&text).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.to_json_pretty().unwrap(), text);
    // Steps keep scenario order through JSON.
    let steps: Vec<&str> = back.workflows["note_share"]
        .step_latencies
        .iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        steps,
        [
            "create_note",
            "share_note",
            "list_shared_with_me",
            "read_shared_note"
        ]
    );
}

#[test]
fn write_json_is_atomic_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    let report = build_report(&report_support::realistic_input());
    write_json(&report, &path, 10_000).unwrap();
    write_json(&report, &path, 10_000).unwrap();
    assert_eq!(read_json(&path).unwrap(), report);
    // Each user on one line of its own.
    let text = std::fs::read_to_string(&path).unwrap();
    for name in report.users.keys() {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("\"{name}\": {{")))
            .unwrap_or_else(|| panic!("no line for {name}"));
        assert!(line.trim_end().ends_with("},") || line.trim_end().ends_with('}'));
        assert!(line.contains("\"latency\":{"), "{line}");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["run.json"], "no temporary file left behind");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(errors(&json), Vec::<String>::new());
}

#[test]
fn a_run_with_more_users_than_listed_writes_every_user_beside_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let report = build_report(&report_support::realistic_input());
    let n = report.users.len();
    assert!(n > 2, "the input has {n} users");
    write_json(&report, &path, 2).unwrap();

    let written = read_json(&path).unwrap();
    let detail = written.users_detail.clone().expect("users_detail");
    assert_eq!(detail.users, n as u64);
    assert_eq!(detail.file, "big.users.csv");
    assert!(written.users.len() <= n);
    for (name, user) in &written.users {
        assert_eq!(&report.users[name], user, "listed users keep their figures");
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(errors(&json), Vec::<String>::new());

    // The file has every user, with the figures of the full report.
    let text = std::fs::read_to_string(dir.path().join("big.users.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, detail.columns);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), n);
    for row in &rows {
        let user = &report.users[row[0]];
        assert_eq!(
            row[col("total_operations")],
            user.total_operations.to_string()
        );
        assert_eq!(
            row[col("failed_operations")],
            user.failed_operations.to_string()
        );
        let p95: f64 = row[col("latency_p95")].parse().unwrap();
        assert_eq!(p95, user.latency.p95);
        for (tool, calls) in &user.operations_breakdown {
            assert_eq!(row[col(&format!("calls:{tool}"))], calls.to_string());
        }
    }
    // The console says where every user is.
    let console = controller::report::render_console(&written);
    assert!(
        console.contains(&format!("{n} users (each one is in big.users.csv")),
        "{console}"
    );
}
