#!/usr/bin/env python3
"""Offline check of deploy/k8s: renders each kustomization with `kubectl kustomize`, validates
every object against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields
are errors) and checks what the schemas cannot see: the agents dial the controller's Service,
the Service selects the controller pod and its ports exist, the agent count agrees with the
agent Job, probes hit /health on a declared port, every container requests CPU and memory,
secrets reach pods from the Secret and never through argv. Then it breaks the rendered objects on
purpose and expects each break to be caught, so the checks themselves can fail.

Run by deploy/k8s-test.sh, which installs kubernetes-validate and kubectl from PyPI.
Usage: k8s_check.py KUBECTL K8S_DIR
"""

import copy
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

# The oldest and newest Kubernetes versions the manifests are validated against.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
OVERLAYS = ["base", "with-mock"]
HTTP_PORT = 9090
GRPC_PORT = 7000


class Failed(Exception):
    pass


def render(kubectl, k8s_dir, overlay):
    """`kubectl kustomize` of one overlay, in a copy of K8S_DIR with a throwaway secrets.env."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "k8s"
        shutil.copytree(k8s_dir, root, ignore=shutil.ignore_patterns("secrets.env"))
        (root / "base" / "secrets.env").write_text(
            f"MCP_SWARM_CLUSTER_SECRET={secrets.token_hex(32)}\n"
            "NEXTCLOUD_ADMIN_USER=admin\n"
            f"NEXTCLOUD_ADMIN_PASSWORD={secrets.token_hex(16)}\n"
        )
        out = subprocess.run(
            [kubectl, "kustomize", str(root / overlay)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise Failed(f"kubectl kustomize {overlay}: {out.stderr.strip()}")
        return [d for d in yaml.safe_load_all(out.stdout) if d]


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objs, kind, prefix):
    """The one object of KIND whose name is PREFIX or PREFIX-<kustomize hash>."""
    hits = [
        o
        for o in objs
        if o["kind"] == kind and re.fullmatch(re.escape(prefix) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])
    ]
    if len(hits) != 1:
        raise Failed(f"expected one {kind} named {prefix}, found {len(hits)}")
    return hits[0]


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def containers(obj):
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def check_schemas(objs):
    for version in K8S_VERSIONS:
        for obj in objs:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                raise Failed(f"{name_of(obj)} against Kubernetes {version}: {path}: {e.message}")


def flag(args, name):
    """The value of --NAME=VALUE in ARGS, or None."""
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def check_wiring(objs):
    controller = find(objs, "Job", "mcp-swarm-controller")
    agents = find(objs, "Job", "mcp-swarm-agent")
    service = find(objs, "Service", "mcp-swarm-controller")
    run = find(objs, "ConfigMap", "mcp-swarm-run")
    secret = find(objs, "Secret", "mcp-swarm-secrets")

    # The Service selects the controller pod, and nothing else that is rendered.
    selector = service["spec"]["selector"]
    for obj in objs:
        labels = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        selected = all(labels.get(k) == v for k, v in selector.items())
        if selected != (obj is controller):
            raise Failed(f"Service mcp-swarm-controller selector {selector} {'selects' if selected else 'misses'} {name_of(obj)}")
    ctl = pod_spec(controller)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in ctl.get("ports", [])}
    for p in service["spec"]["ports"]:
        if p["targetPort"] not in ports:
            raise Failed(f"Service port {p['name']} targets {p['targetPort']}, which the controller container does not declare")
    if not service["spec"].get("publishNotReadyAddresses"):
        raise Failed("Service mcp-swarm-controller must publish not-ready addresses: agents register before the controller is ready")

    # The controller listens where the Service sends agents, and the agents dial that Service.
    listen = flag(ctl["args"], "listen")
    if listen != f"0.0.0.0:{ports.get('grpc')}":
        raise Failed(f"controller --listen={listen} is not the container's grpc port {ports.get('grpc')} on 0.0.0.0")
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    agent = pod_spec(agents)["containers"][0]
    want = f"http://{service['metadata']['name']}:{grpc['port']}"
    if flag(agent["args"], "controller") != want:
        raise Failed(f"agent --controller={flag(agent['args'], 'controller')}, expected {want} (the controller's Service)")

    # The controller waits for as many agents as the agent Job runs.
    n = run["data"].get("MCP_SWARM_AGENTS")
    spec = agents["spec"]
    if not (str(spec.get("completions")) == str(spec.get("parallelism")) == n):
        raise Failed(f"MCP_SWARM_AGENTS={n} but the agent Job has completions={spec.get('completions')}, parallelism={spec.get('parallelism')}")
    if spec.get("completionMode") != "Indexed":
        raise Failed("the agent Job must be Indexed (one pod per agent)")
    if controller["spec"].get("backoffLimit") != 0:
        raise Failed("the controller Job must not be retried (backoffLimit 0): a retry provisions every user again")

    # Both speak HTTP on 9090 with probes on /health.
    for obj, c in ((controller, ctl), (agents, agent)):
        if flag(c["args"], "http") != f"0.0.0.0:{HTTP_PORT}":
            raise Failed(f"{name_of(obj)} must serve --http=0.0.0.0:{HTTP_PORT}")
        cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            get = c.get(probe, {}).get("httpGet")
            if not get or get.get("path") != "/health" or cports.get(get.get("port")) != HTTP_PORT:
                raise Failed(f"{name_of(obj)} {probe} must GET /health on the declared port {HTTP_PORT}")

    # Resources, secrets.
    secret_keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
    for obj in objs:
        if "template" not in obj.get("spec", {}):
            continue
        for c in containers(obj):
            req = c.get("resources", {}).get("requests", {})
            if "cpu" not in req or "memory" not in req:
                raise Failed(f"{name_of(obj)} container {c['name']} must request cpu and memory")
            for a in c.get("command", []) + c.get("args", []):
                if re.search(r"secret|password|token", a, re.I) and "=" in a:
                    raise Failed(f"{name_of(obj)} container {c['name']} passes {a.split('=')[0]}=… on the command line: secrets go by environment")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret_keys):
                    raise Failed(f"{name_of(obj)} env {e['name']} refers to {ref['name']}/{ref['key']}, which is not rendered")
    if "MCP_SWARM_CLUSTER_SECRET" not in {e["name"] for e in agent.get("env", [])}:
        raise Failed("the agents get no MCP_SWARM_CLUSTER_SECRET")
    refs = {r.get("secretRef", {}).get("name") for r in ctl.get("envFrom", [])}
    if secret["metadata"]["name"] not in refs:
        raise Failed("the controller does not get the Secret in its environment")


def check(objs):
    check_schemas(objs)
    check_wiring(objs)


def mutations():
    """Breaks that check() must catch: (what, function of the rendered objects)."""

    def ctl_container(objs):
        return pod_spec(find(objs, "Job", "mcp-swarm-controller"))["containers"][0]

    def agent_container(objs):
        return pod_spec(find(objs, "Job", "mcp-swarm-agent"))["containers"][0]

    def unknown_field(objs):
        agent_container(objs)["imagePullPolicyy"] = "Always"

    def wrong_type(objs):
        find(objs, "Job", "mcp-swarm-agent")["spec"]["parallelism"] = "three"

    def agents_dial_elsewhere(objs):
        c = agent_container(objs)
        c["args"] = [a if not a.startswith("--controller=") else "--controller=http://controller:7000" for a in c["args"]]

    def fewer_agents(objs):
        find(objs, "Job", "mcp-swarm-agent")["spec"]["parallelism"] = 2

    def service_selects_agents(objs):
        find(objs, "Service", "mcp-swarm-controller")["spec"]["selector"] = {"app.kubernetes.io/name": "mcp-swarm"}

    def no_requests(objs):
        del agent_container(objs)["resources"]["requests"]

    def probe_elsewhere(objs):
        ctl_container(objs)["livenessProbe"]["httpGet"]["path"] = "/"

    def secret_on_argv(objs):
        ctl_container(objs)["args"].append("--cluster-secret=abc")

    def missing_secret_key(objs):
        agent_container(objs)["env"][-1]["valueFrom"]["secretKeyRef"]["key"] = "CLUSTER_SECRET"

    return [
        ("an unknown field", unknown_field),
        ("a field of the wrong type", wrong_type),
        ("agents dialing another host", agents_dial_elsewhere),
        ("fewer agents than MCP_SWARM_AGENTS", fewer_agents),
        ("a Service selecting the agents", service_selects_agents),
        ("a container without requests", no_requests),
        ("a probe off /health", probe_elsewhere),
        ("a secret on argv", secret_on_argv),
        ("a secret key that is not rendered", missing_secret_key),
    ]


def main():
    kubectl, k8s_dir = sys.argv[1], pathlib.Path(sys.argv[2])
    passed = failed = 0

    def outcome(ok, what, detail=""):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(f"{'ok' if ok else 'FAILED'}: {what}{': ' + detail if detail else ''}")

    for overlay in OVERLAYS:
        try:
            objs = render(kubectl, k8s_dir, overlay)
        except Failed as e:
            outcome(False, f"{overlay} renders", str(e))
            continue
        kinds = ", ".join(name_of(o) for o in objs)
        try:
            check(objs)
            outcome(True, f"{overlay} validates against Kubernetes {' and '.join(K8S_VERSIONS)} and is wired", kinds)
        except Failed as e:
            outcome(False, f"{overlay} validates and is wired", str(e))
        for what, mutate in mutations():
            broken = copy.deepcopy(objs)
            mutate(broken)
            try:
                check(broken)
                outcome(False, f"{overlay} with {what} is refused", "it passed")
            except Failed as e:
                outcome(True, f"{overlay} with {what} is refused", str(e))
    print(f"k8s: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
