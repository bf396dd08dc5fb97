#!/usr/bin/env bash
# Property-based test of the HTTP API against its own OpenAPI document, with schemathesis: the
# service must never answer 5xx, never drop a connection, and every answer (status code, content
# type, body) must be one the document describes. Runs a fresh service on SQLite with an admin
# token for a bounded time (API_CHECK_SECONDS, default 120).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELICENCE_BIN:-$root/target/debug/elicence}
seconds=${API_CHECK_SECONDS:-120}
venv=$root/target/api-check-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ELICENCE_DATA_DIR=$work/data ELICENCE_KEYS_DIR=$work/keys ELICENCE_TEMPLATES_DIR=$root/templates
export ELICENCE_LISTEN=127.0.0.1:$port ELICENCE_VERIFY_BASE=https://zz.example.gov.cn RUST_LOG=warn
# A licence to find, so that generated requests reach more than "not found".
"$bin" directory show 11100000000013338W032 --example > "$work/record.json"
"$bin" issue 11100000000013338W032 --file "$work/record.json" > /dev/null
token=$("$bin" token create --name api-check --roles admin | tail -1)
"$bin" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break
    sleep 0.1
done
status=0
(cd "$work" && PYTHONPATH=$root/tools SCHEMATHESIS_HOOKS=api_check_hooks "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --max-time "$seconds" --workers 2 --request-timeout 10 \
    --suppress-health-check all --no-color) || status=$?
if grep -q "panicked" "$work/serve.log"; then
    echo "api-check: the service panicked:" >&2
    grep -A3 "panicked" "$work/serve.log" >&2
    status=1
fi
exit $status
