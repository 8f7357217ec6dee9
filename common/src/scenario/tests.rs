//! Scenario parsing tests: the built-in scenario, workload resolution, and
//! one table row per kind of error a user can make.

use super::*;

const ORIGIN: &str = "test.yaml";

/// A valid two-role workflow to build error cases from.
const BASE: &str = r#"
workflows:
  share:
    roles: [owner, reader]
    steps:
      - name: create
        as: owner
        tool: nc_notes_create_note
        args: { title: "t-{{ uuid }}", content: "x", category: c }
        capture: { note_id: "$.id" }
      - name: read
        as: reader
        tool: nc_notes_get_note
        args: { note_id: "{{ note_id }}" }
"#;

/// Parses `yaml` and asserts the error contains `expected` (and a location
/// when `line` is given).
fn check(yaml: &str, expected: &str, line: Option<usize>) {
    let err = match Scenario::parse(yaml, ORIGIN) {
        Ok(_) => panic!("expected an error containing {expected:?}, parsed fine:\n{yaml}"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.starts_with(ORIGIN), "{text}");
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
    if let Some(line) = line {
        assert_eq!(err.location().map(|l| l.line), Some(line), "{text}");
        assert!(text.starts_with(&format!("{ORIGIN}:{line}:")), "{text}");
    }
}

#[test]
fn base_parses() {
    let s = Scenario::parse(BASE, ORIGIN).unwrap();
    let wf = s.workflow("share").unwrap();
    assert_eq!(wf.n_roles(), 2);
    assert_eq!(wf.steps[1].actors, vec![1]);
    // No workloads: every workflow with weight 1.
    let w = s.resolve_workload(None).unwrap();
    assert_eq!(w.name, "all");
    assert_eq!(
        w.mix,
        vec![MixEntry {
            workflow: "share".into(),
            weight: 1
        }]
    );
}

#[test]
fn errors() {
    let cases: &[(&str, &str, Option<usize>)] = &[
        // YAML syntax.
        ("workflows: [", "test.yaml:", None),
        // Unknown top-level key (deny_unknown_fields).
        ("workflowz: {}\n", "unknown field `workflowz`", Some(1)),
        // Unknown step key.
        (
            &BASE.replace(
                "        as: reader\n",
                "        as: reader\n        expext: {}\n",
            ),
            "unknown field `expext`",
            Some(13),
        ),
        (
            "version: 2\nworkflows: {}\n",
            "unsupported scenario version 2",
            Some(1),
        ),
        ("workflows: {}\n", "`workflows:` is empty", Some(1)),
        // Unknown role in `as`.
        (
            &BASE.replace("as: reader", "as: writer"),
            "unknown role `writer`",
            Some(12),
        ),
        // Missing `as` in a multi-role workflow.
        (
            &BASE.replace("        as: reader\n", ""),
            "add `as:`",
            Some(11),
        ),
        // Several roles without parallel.
        (
            &BASE.replace("as: reader", "as: all"),
            "must say `parallel: true`",
            Some(12),
        ),
        // Duplicate step name.
        (
            &BASE.replace("name: read", "name: create"),
            "duplicate step name",
            Some(11),
        ),
        // Unknown step in a template.
        (
            &BASE.replace("\"{{ note_id }}\"", "\"{{ steps.nope.result.id }}\""),
            "no earlier step named `nope`",
            Some(14),
        ),
        // Unknown capture.
        (
            &BASE.replace("\"{{ note_id }}\"", "\"{{ note }}\""),
            "`note` is not captured",
            Some(14),
        ),
        // Template syntax.
        (
            &BASE.replace("\"{{ note_id }}\"", "\"{{ note_id\""),
            "without a closing",
            Some(14),
        ),
        // Bad JSON path in a capture.
        (
            &BASE.replace("\"$.id\"", "\"id\""),
            "must start with `$`",
            Some(10),
        ),
        // Reserved capture name.
        (
            &BASE.replace("{ note_id: \"$.id\" }", "{ uuid: \"$.id\" }"),
            "reserved",
            Some(10),
        ),
        // Duplicate role.
        (
            &BASE.replace("[owner, reader]", "[owner, owner]"),
            "lists role `owner` twice",
            Some(4),
        ),
        // Baseline with two roles.
        (
            &BASE.replace("    roles:", "    baseline: true\n    roles:"),
            "exactly one role",
            Some(4),
        ),
        // Unknown workflow in a workload.
        (
            &format!("{BASE}workloads:\n  w: {{ share: 1, nope: 2 }}\n"),
            "unknown workflow `nope`",
            Some(16),
        ),
        // Zero total weight.
        (
            &format!("{BASE}workloads:\n  w: {{ share: 0 }}\n"),
            "total weight of 0",
            Some(16),
        ),
        // Unknown default workload.
        (
            &format!("{BASE}default_workload: heavy\n"),
            "default_workload `heavy`",
            Some(15),
        ),
        // Duplicate mapping key.
        (
            &format!("{BASE}workloads:\n  w: {{ share: 1, share: 2 }}\n"),
            "duplicate",
            None,
        ),
        // A parallel step's capture read as if it had one value.
        (
            &BASE.replace(
                "        as: owner\n",
                "        as: all\n        parallel: true\n",
            ),
            "write `{{ my.note_id }}`",
            Some(15),
        ),
        // args not a mapping.
        (
            &BASE.replace("{ note_id: \"{{ note_id }}\" }", "[1, 2]"),
            "must be a mapping",
            Some(14),
        ),
        // Bad JSON path in expect.
        (
            &format!("{BASE}        expect: {{ json: {{ \"$.a[\": 1 }} }}\n"),
            "missing `]`",
            Some(15),
        ),
        // other.name in a one-role workflow.
        (
            "workflows:\n  solo:\n    steps:\n      - { name: a, tool: t, args: { x: \"{{ other.name }}\" } }\n",
            "needs a second role",
            Some(4),
        ),
        // Bad exists check.
        (
            &format!("{BASE}        expect: {{ json: {{ \"$.a\": {{ exists: 1 }} }} }}\n"),
            "`{exists: true}`",
            Some(15),
        ),
    ];
    for (yaml, expected, line) in cases {
        check(yaml, expected, *line);
    }
}

#[test]
fn builtin_parses_and_is_stable() {
    let s = Scenario::builtin();
    let names: Vec<&str> = s.workflows().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "note_share",
            "collaborative_edit",
            "team_edit",
            "file_share",
            "permission_escalation",
            "baseline"
        ]
    );
    for wf in s.workflows() {
        assert!(wf.n_roles() <= 4, "{}", wf.name);
    }
    assert_eq!(s.workflow("team_edit").unwrap().n_roles(), 4);
    assert!(s.workflow("baseline").unwrap().baseline);
    assert_eq!(s.digest().len(), 64);
    assert_eq!(
        Scenario::parse(s.source(), "again").unwrap().digest(),
        s.digest()
    );
    let mixed = s.resolve_workload(None).unwrap();
    assert_eq!(mixed.name, "mixed");
    let weights: Vec<(&str, u32)> = mixed
        .mix
        .iter()
        .map(|m| (m.workflow.as_str(), m.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("baseline", 50),
            ("note_share", 30),
            ("collaborative_edit", 15),
            ("file_share", 5)
        ]
    );
    for name in ["sharing", "collaboration", "team", "baseline"] {
        assert_eq!(s.resolve_workload(Some(name)).unwrap().name, name);
    }
    // A workflow name runs that workflow alone.
    assert_eq!(s.resolve_workload(Some("file_share")).unwrap().mix.len(), 1);
    let err = s.resolve_workload(Some("heavy")).unwrap_err().to_string();
    assert!(
        err.contains("mixed, sharing, collaboration, team, baseline"),
        "{err}"
    );
}

/// Runs a built-in workflow's templates against results shaped as the real
/// Nextcloud MCP server gives them, as the agent would, to catch
/// references that only fail at run time.
#[test]
fn builtin_note_share_renders() {
    let wf = Scenario::builtin().workflow("note_share").unwrap();
    let mut b = Bindings::new(vec!["alice".into(), "bob".into()], "u1".into(), 0);
    let bind = |b: &mut Bindings, step: &str, out: &ToolOutput, role: usize| {
        let step = wf.step(step).unwrap();
        for (k, v) in step.evaluate(out, b, role).unwrap().captures {
            b.set_capture(&k, v);
        }
        b.set_result(&step.name, out.json.clone());
    };
    let create = &wf.steps[0];
    let args = create.render_args(&b, 0).unwrap();
    assert_eq!(args["title"], "note-u1");
    assert_eq!(args["content"], "hello from alice");
    let created = r#"{"success":true,"timestamp":"2026-12-04T08:00:00Z","id":5,"title":"note-u1","category":"loadtest","etag":"e1","url":"http://nc/index.php/apps/notes/#/note/5"}"#;
    bind(
        &mut b,
        "create_note",
        &ToolOutput::new(false, created.into(), serde_json::from_str(created).ok()),
        0,
    );
    let share = wf.step("share_note").unwrap().render_args(&b, 0).unwrap();
    assert_eq!(share["path"], "/Notes/loadtest/note-u1.md");
    assert_eq!(share["share_with"], "bob");
    // A share tool's text, wrapped by the Python SDK as `{"result": text}`.
    let shared = r#"{"id":"11","share_type":0,"path":"/Notes/loadtest/note-u1.md","file_target":"/note-u1.md","permissions":1}"#;
    bind(
        &mut b,
        "share_note",
        &ToolOutput::new(
            false,
            shared.into(),
            Some(serde_json::json!({ "result": shared })),
        ),
        0,
    );
    let read = wf.step("read_shared_note").unwrap();
    assert_eq!(read.render_args(&b, 1).unwrap()["path"], "/note-u1.md");
    let content = ToolOutput::new(
        false,
        String::new(),
        Some(serde_json::json!({"path": "/note-u1.md", "content": "hello from alice"})),
    );
    assert!(read.evaluate(&content, &b, 1).is_ok());
    let bad = ToolOutput::new(true, "Note 5 not found".into(), None);
    assert_eq!(
        read.evaluate(&bad, &b, 1).unwrap_err().kind(),
        crate::ErrorKind::Tool
    );
}

/// A four-writer edit: per-role captures from a parallel re-read, a
/// conditional write that may lose the race, retried after re-reading.
const EDIT: &str = r#"
workflows:
  edit:
    roles: [owner, a, b, c]
    steps:
      - name: open
        as: all
        parallel: true
        tool: nc_webdav_read_file
        args: { path: "/doc-{{ uuid }}.md" }
        capture: { etag: "$.etag", text: "$.content" }
      - name: write
        as: all
        parallel: true
        tool: nc_webdav_write_file
        args: { path: "/doc-{{ uuid }}.md", content: "{{ my.text }}\nby {{ user.name }}", if_match: "{{ my.etag }}" }
        expect: { outcomes: [success, conflict] }
        retry: { on: conflict, attempts: 4, reread: open }
      - name: search
        as: owner
        tool: nc_notes_search_notes
        args: { query: "doc" }
        expect: { json: { "$.results": { contains: "doc-{{ uuid }}" } } }
"#;

#[test]
fn retries_outcomes_and_per_role_captures() {
    let s = Scenario::parse(EDIT, ORIGIN).unwrap();
    let wf = s.workflow("edit").unwrap();
    let write = wf.step("write").unwrap();
    assert_eq!(
        write.retry,
        Some(Retry {
            attempts: 4,
            reread: Some(0)
        })
    );
    assert_eq!(
        write.expect.outcomes,
        vec![Outcome::Success, Outcome::Conflict]
    );
    // Each role renders with what it captured itself.
    let mut b = Bindings::new(
        vec!["o".into(), "a".into(), "b".into(), "c".into()],
        "u".into(),
        0,
    );
    for role in 0..4 {
        b.set_capture_for(role, "etag", serde_json::json!(format!("e{role}")));
        b.set_capture_for(role, "text", serde_json::json!("draft"));
    }
    let args = write.render_args(&b, 2).unwrap();
    assert_eq!(args["if_match"], "e2");
    assert_eq!(args["content"], "draft\nby b");
    // A role that captured nothing cannot render `my.`: the step is skipped.
    let empty = Bindings::new(vec!["o".into()], "u".into(), 0);
    assert!(write.render_args(&empty, 0).is_err());
    // A conflict is retried; a success or another error is not.
    let conflict = ToolOutput::new(
        true,
        "File was modified since the given etag was read (concurrent edit) — re-read before writing".into(),
        None,
    );
    assert!(write.retries_on(&conflict));
    assert!(!write.retries_on(&ToolOutput::new(true, "Note 1 not found".into(), None)));
    assert!(!wf.step("open").unwrap().retries_on(&conflict));
}

#[test]
fn retry_and_outcome_errors() {
    let rows: [(&str, &str, &str); 6] = [
        (
            "attempts: 4",
            "attempts: 1",
            "counts every call, the first included",
        ),
        ("on: conflict", "on: error", "only `on: conflict`"),
        (
            "reread: open",
            "reread: nothing",
            "`reread: nothing` names no earlier step",
        ),
        (
            "outcomes: [success, conflict]",
            "outcomes: [success, lost]",
            "unknown outcome `lost`",
        ),
        (
            "outcomes: [success, conflict]",
            "outcomes: [conflict], error: true",
            "either `error: true` or `outcomes:`",
        ),
        (
            "{ contains: \"doc-{{ uuid }}\" }",
            "{ contains: 3 }",
            "write `{contains: \"text\"}` alone",
        ),
    ];
    for (from, to, expected) in rows {
        assert!(EDIT.contains(from), "{from}");
        check(&EDIT.replace(from, to), expected, None);
    }
    // A reread step the retrying role does not play.
    let solo = EDIT.replace(
        "      - name: open\n        as: all\n        parallel: true\n",
        "      - name: open\n        as: owner\n",
    );
    check(&solo, "is not played by role `a`", None);
}

#[test]
fn builtin_declares_nextcloud_provisioning() {
    let p = Scenario::builtin().provision().unwrap();
    assert_eq!(p.when_tool, "nc_auth_provision_access");
    assert_eq!(p.check_tool, "nc_auth_check_status");
    assert_eq!(p.visit, Visit::NextcloudLoginFlow);
    assert!(p.is_done(&serde_json::json!({"status": "provisioned"})));
    assert!(!p.is_done(&serde_json::json!({"status": "not_initiated"})));
    assert!(!p.is_done(&serde_json::json!({})));
    let started =
        serde_json::json!({"status": "login_required", "login_url": "http://nc/login/v2/flow/x"});
    assert_eq!(p.url_in(&started), Some("http://nc/login/v2/flow/x"));
    assert_eq!(p.within, std::time::Duration::from_secs(60));
}

#[test]
fn setup_errors_name_the_field() {
    let good = r#"
setup:
  provision:
    when_tool: start_it
    check: { tool: check_it, done: { "$.ok": true } }
    start: { tool: start_it, url: "$.url" }
    visit: nextcloud_login_flow
    poll: { every: 1s, within: 30s }
"#;
    let base = format!("{BASE}{good}");
    let s = Scenario::parse(&base, ORIGIN).unwrap();
    assert_eq!(
        s.provision().unwrap().every,
        std::time::Duration::from_secs(1)
    );
    for (from, to, expected) in [
        (
            "visit: nextcloud_login_flow",
            "visit: carrier_pigeon",
            "unknown `visit: carrier_pigeon`",
        ),
        ("done: { \"$.ok\": true }", "args: {}", "needs `done:`"),
        ("url: \"$.url\"", "args: {}", "needs `url:`"),
        ("within: 30s", "within: 2h", "every ≤ within ≤ 600s"),
        (
            "when_tool: start_it",
            "when_tool: \"\"",
            "when_tool` is empty",
        ),
    ] {
        check(&base.replace(from, to), expected, None);
    }
}
