#!/usr/bin/env bash
# Schemathesis (PyPI) against a running `databrain serve` on a generated small sample, driven by
# the server's own /api/openapi.json: no 5xx, status codes, content types and JSON bodies as
# documented. Bounded: a fixed number of examples per operation and a time limit per request.
# Usage: tests/fuzz/schemathesis.sh DATABRAIN_BIN VENV [EXAMPLES]
set -euo pipefail
bin=$(realpath "$1")
venv=$(realpath "$2")
examples=${3:-30}
tmp=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" generate --out "$tmp/sample" --scale small --seed 3 >/dev/null
"$bin" ingest --db "$tmp/db.duckdb" "$tmp/sample" >/dev/null
token="fuzz-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
DATABRAIN_ADMIN_TOKEN="$token" "$bin" serve --db "$tmp/db.duckdb" --addr 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
base=""
for _ in $(seq 1 300); do
	base=$(sed -n 's|^databrain listening on \(http://[^/]*\)/$|\1|p' "$tmp/out")
	[ -n "$base" ] && break
	sleep 0.1
done
[ -n "$base" ] || { echo "the server did not start:"; cat "$tmp/err"; exit 1; }
# Schemathesis keeps a cache in its working directory: run it in the temporary one.
hooks_dir=$(cd "$(dirname "$0")" && pwd)
cd "$tmp"
export PYTHONPATH="$hooks_dir${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=hooks
# The streams are WebSockets and server-sent events (an event stream never ends, so each case
# would last until the request timeout); snapshots need a GPU or lavapipe. The router and
# end-to-end tests cover them. hooks.py teaches Schemathesis to write NDJSON bodies.
"$venv/bin/schemathesis" run "$base/api/openapi.json" \
	-H "Authorization: Bearer $token" \
	--checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
	--exclude-path /ws/view \
	--exclude-path /ws/events \
	--exclude-path /api/events \
	--exclude-path-regex '.*snapshot\.png$' \
	--max-examples "$examples" \
	--request-timeout 30 \
	--generation-deterministic \
	--suppress-health-check all
