#!/usr/bin/env bash
# The real Nextcloud MCP server (nextcloud-mcp-server from PyPI, pinned) for
# rehearsals and for the end-to-end tests that drive it.
#
#   scripts/nextcloud-mcp-server.sh install
#       Installs nextcloud-mcp-server==$NC_MCP_VERSION into a virtualenv at
#       $NC_MCP_VENV (default: .venv-nextcloud-mcp in the repository), once.
#   scripts/nextcloud-mcp-server.sh run --nextcloud URL [--port N] [--host H]
#       Runs it in the foreground in its default OAuth "login_flow" mode with
#       URL as its Nextcloud (e.g. the mock target's admin_url): it registers
#       itself at the Nextcloud's OIDC app, is its own authorization server,
#       and reaches Nextcloud with each user's Login Flow v2 app password.
#       Its MCP endpoint is http://H:N/mcp (default 127.0.0.1:8000). The
#       token encryption key is fresh per run and its token database lives
#       in a temporary directory removed on exit.
#   scripts/nextcloud-mcp-server.sh bin
#       Prints the path of the installed executable.
#
# Secrets never go on a command line: the encryption key reaches the server
# through its environment only.
set -euo pipefail

NC_MCP_VERSION="${NC_MCP_VERSION:-0.202.1}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${NC_MCP_VENV:-$repo/.venv-nextcloud-mcp}"
bin="$venv/bin/nextcloud-mcp-server"

die() { echo "nextcloud-mcp-server.sh: $*" >&2; exit 2; }

install() {
  if [ -x "$bin" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('nextcloud-mcp-server') != '$NC_MCP_VERSION')" 2>/dev/null; then
    echo "nextcloud-mcp-server $NC_MCP_VERSION is installed in $venv"
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed (Debian: apt-get install python3 python3-venv)"
  python3 -m venv "$venv" || die "cannot create a virtualenv at $venv (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nextcloud-mcp-server==$NC_MCP_VERSION"
  echo "nextcloud-mcp-server $NC_MCP_VERSION installed in $venv"
}

run() {
  local nextcloud="" port=8000 host=127.0.0.1
  while [ $# -gt 0 ]; do
    case "$1" in
      --nextcloud) nextcloud="${2:-}"; shift 2 ;;
      --port) port="${2:-}"; shift 2 ;;
      --host) host="${2:-}"; shift 2 ;;
      *) die "unknown argument $1 (run --nextcloud URL [--port N] [--host H])" ;;
    esac
  done
  [ -n "$nextcloud" ] || die "run needs --nextcloud URL (the mock target's admin_url, or your Nextcloud)"
  [ -x "$bin" ] || die "not installed: run '$0 install' first"
  # Global, not local: the EXIT trap runs after this function has returned.
  tmp_dir="$(mktemp -d)"
  trap 'rm -rf "$tmp_dir"' EXIT
  local key
  key="$("$venv/bin/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
  env -u NEXTCLOUD_USERNAME -u NEXTCLOUD_PASSWORD \
    NEXTCLOUD_HOST="$nextcloud" \
    NEXTCLOUD_MCP_SERVER_URL="http://$host:$port" \
    TOKEN_ENCRYPTION_KEY="$key" \
    TOKEN_STORAGE_DB="$tmp_dir/tokens.db" \
    METRICS_ENABLED=false \
    "$bin" run --host "$host" --port "$port" --oauth &
  local pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp_dir"' EXIT INT TERM
  wait "$pid"
}

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  bin) [ -x "$bin" ] || die "not installed: run '$0 install' first"; echo "$bin" ;;
  *) die "usage: $0 install | run --nextcloud URL [--port N] [--host H] | bin" ;;
esac
