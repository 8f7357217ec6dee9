#!/usr/bin/env python3
"""Tables for bench/real-server.sh (standard library only).

  real_server_tables.py tables WORKDIR   markdown tables from WORKDIR/results.jsonl and the
                                         reports it names (report-SERVER-USERS.json)
  real_server_tables.py pyspy RAW        the functions that hold the most samples of a py-spy
                                         `record --format raw` file (collapsed stacks)
"""

import json
import os
import re
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

LOGGED_CALL = re.compile(r"^\w+ \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] \S+ - tool call (\S+) ")


def server_logged_calls(workdir, res):
    """Tool calls the real server logged as finished inside the report's measured window
    (its log has whole seconds, in UTC here: the window's edges are rounded down), or None."""
    path = os.path.join(workdir, f"server-{res['server']}-{res['users']}.log")
    r = res["r"]
    if res["server"] != "real" or r is None or not os.path.exists(path):
        return None
    start = datetime.fromisoformat(r["run"]["started_at"].replace("Z", "+00:00"))
    start += timedelta(seconds=r["run"]["warmup_seconds"])
    end = start + timedelta(seconds=r["run"]["duration_seconds"])
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    n = 0
    with open(path, errors="replace") as f:
        for line in f:
            m = LOGGED_CALL.match(line)
            if m:
                t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
                if start <= t < end:
                    n += 1
    return n


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


def lat(latency, count=None):
    if not latency or count == 0:
        return "-"
    return f"{ms(latency['median'])} / {ms(latency['p95'])}"


def us_per(cpu_s, calls):
    if cpu_s is None or not calls:
        return "-"
    return f"{cpu_s * 1e6 / calls:,.0f}"


def load(workdir):
    runs = []
    with open(os.path.join(workdir, "results.jsonl")) as f:
        for line in f:
            res = json.loads(line)
            res["r"] = None
            if res.get("report"):
                with open(os.path.join(workdir, res["report"])) as rf:
                    res["r"] = json.load(rf)
            runs.append(res)
    return runs


def label(res):
    return f"{res['server']} {res['users']}"


def baseline_steps(r):
    """The baseline workflow's steps are its tools (each called once per execution)."""
    return r["baseline"]["operations"] if r and r.get("baseline") else {}


def workflow_rows(r):
    """(workflow, executions, failed, latency or None) for every workflow of the run."""
    rows = []
    for name, w in r["workflows"].items():
        rows.append((name, w["total_executions"], w["failed_executions"], w["latency"]))
    ops = baseline_steps(r)
    if ops:
        # One execution = one delete_note (its last step, `always`); a failed execution has
        # at least one failed step, at most this many.
        execs = ops.get("nc_notes_delete_note", {}).get("total_operations", 0)
        failed = max((o["failed_operations"] for o in ops.values()), default=0)
        rows.append(("baseline", execs, failed, None))
    return rows


def tables(workdir):
    runs = load(workdir)
    out = []
    p = out.append

    p("Throughput, latency of every tool call, and CPU per tool call over the measured window. "
      "Calls: the report's (tool calls of workflows started in the window) and, for the real "
      "server, the tool calls its log says finished in the window; CPU per call is per the "
      "latter where there is one.")
    p("")
    p("| server | users | think | tool calls/s (report) | tool calls/s (server log) | workflows/s | failed calls | call p50 / p95 ms "
      "| server CPU µs/call | server core busy | mock (as Nextcloud) CPU µs/call "
      "| agents CPU µs/call | controller CPU µs/call |")
    p("|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for res in runs:
        r = res["r"]
        if r is None:
            p(f"| {res['server']} | {res['users']} | | no report (exit {res['exit']}) ||||||||||")
            continue
        s = r["summary"]
        d = r["run"]["duration_seconds"]
        logged = server_logged_calls(workdir, res)
        calls = logged if logged is not None else s["total_operations"]
        wf = sum(x[1] for x in workflow_rows(r))
        cpu = res["cpu_s"]
        busy = "-" if cpu["server"] is None else f"{cpu['server'] / d * 100:.0f}%"
        mock = "same process" if res["server"] == "mock" else us_per(cpu["mock"], calls)
        n = s["total_operations"]
        failed = f"{s['failed_operations']:,} ({s['failed_operations'] / n * 100:.1f}%)" if n else "-"
        logged_rate = "-" if logged is None else f"{logged / d:,.1f}"
        p(f"| {res['server']} | {res['users']} | {res['think']} | {n / d:,.1f} | {logged_rate} | {wf / d:,.1f} "
          f"| {failed} | {lat(s['latency'])} | {us_per(cpu['server'], calls)} | {busy} | {mock} "
          f"| {us_per(cpu['agents'], calls)} | {us_per(cpu['controller'], calls)} |")
    p("")

    p("Login and provisioning per user (before the load)")
    p("")
    p("| server | users | logins (failed) | login p50 / p95 ms | provisioned (already) | provisioning p50 / p95 ms "
      "| MCP initialize p50 / p95 ms | server threads, child processes, peak RSS |")
    p("|---|---:|---|---|---|---|---|---|")
    for res in runs:
        r = res["r"]
        if r is None:
            continue
        a = r["auth"]
        prov = a.get("provisioning")
        prov_n = f"{prov['provisioned']} ({prov['already']})" if prov else "-"
        prov_l = lat(prov["latency"]) if prov and prov["provisioned"] else ("not needed" if res["server"] == "mock" else "-")
        mcp = r["mcp"]
        init = lat(mcp["initialize_latency"]) if mcp["initializations"] else "none (stateless)"
        hwm = res.get("server_hwm_kib")
        proc = f"{res.get('server_threads')}, {res.get('server_children')}, {hwm / 1024:.0f} MiB" if hwm else "-"
        p(f"| {res['server']} | {res['users']} | {a['logins']} ({a['login_failures']}) | {lat(a['login_latency'])} "
          f"| {prov_n} | {prov_l} | {init} | {proc} |")
    p("")

    ok = [res for res in runs if res["r"] is not None]
    cols = " | ".join(label(res) for res in ok)
    p("Per workflow: executions/s, then p50 / p95 ms (baseline: no workflow latency in the report; "
      "its steps are below)")
    p("")
    p(f"| workflow | {cols} |")
    p("|---|" + "---|" * len(ok))
    names = []
    for res in ok:
        for row in workflow_rows(res["r"]):
            if row[0] not in names:
                names.append(row[0])
    for name in names:
        cells = []
        for res in ok:
            r = res["r"]
            row = next((x for x in workflow_rows(r) if x[0] == name), None)
            if row is None:
                cells.append("-")
                continue
            d = r["run"]["duration_seconds"]
            failed = f", {row[2]} failed" if row[2] else ""
            cells.append(f"{row[1] / d:.1f}/s{failed}" + (f"; {lat(row[3], row[1])}" if row[3] else ""))
        p(f"| {name} | " + " | ".join(cells) + " |")
    p("")

    p("Per step: p50 / p95 ms")
    p("")
    p(f"| workflow / step | {cols} |")
    p("|---|" + "---|" * len(ok))
    steps = []
    for res in ok:
        for wname, w in res["r"]["workflows"].items():
            for sname in w["step_latencies"]:
                if (wname, sname) not in steps:
                    steps.append((wname, sname))
        for tool in baseline_steps(res["r"]):
            if ("baseline", tool) not in steps:
                steps.append(("baseline", tool))
    for wname, sname in steps:
        cells = []
        for res in ok:
            r = res["r"]
            if wname == "baseline":
                st = baseline_steps(r).get(sname)
                failed = st["failed_operations"] if st else 0
            else:
                st = r["workflows"].get(wname, {}).get("step_latencies", {}).get(sname)
                failed = st["failed_executions"] if st else 0
            n = (st["total_operations"] if wname == "baseline" else st["total_executions"]) if st else 0
            cell = lat(st["latency"], n) if st else "-"
            if failed:
                cell += f" ({failed} failed)"
            cells.append(cell)
        p(f"| {wname} / {sname} | " + " | ".join(cells) + " |")
    p("")

    errs = [(res, e) for res in ok for e in res["r"].get("errors", [])]
    if errs:
        p("Failures (most frequent first, per run)")
        p("")
        for res, e in errs:
            msg = (e["messages"][0] if e["messages"] else "").replace("\n", " ")[:200]
            p(f"- {label(res)}: {e['workflow']}/{e['step']} {e['kind']} ×{e['count']}: {msg}")
        p("")
    return "\n".join(out)


def pyspy(raw, top=25):
    """Self and inclusive samples per function from collapsed stacks ("a;b;c N")."""
    own, incl, total = Counter(), Counter(), 0
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            n = int(n)
            total += n
            frames = [fr for fr in stack.split(";") if fr]
            # The thread name py-spy puts first ("thread (0x...)" / "process ...") is no function.
            frames = [fr for fr in frames if not fr.startswith(("thread (", "process "))]
            if not frames:
                continue
            own[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    lines = [f"{total} samples"]
    lines.append("self %  function")
    for fr, n in own.most_common(top):
        lines.append(f"{n / total * 100:5.1f}  {fr}")
    lines.append("")
    lines.append("inclusive %  function (packages: nextcloud_mcp_server, mcp, starlette, httpx, ...)")
    for fr, n in incl.most_common(top * 2):
        lines.append(f"{n / total * 100:5.1f}  {fr}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "tables":
        print(tables(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "pyspy":
        print(pyspy(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
