#!/usr/bin/env bash
# Verifies QR tokens made by the `elicence` binary with tools/verify_token.py, which uses only
# generic libraries (pycose, cbor2, cryptography) and the exported trust list: the proof that a
# third party can build a verifier from docs/FORMATS.md. A tampered token must be refused. Then
# checks the OpenAPI document with an independent validator.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELICENCE_BIN:-$root/target/debug/elicence}
venv=$root/target/interop-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        pycose==1.1.0 "cbor2==5.9.0" "cryptography==50.0.2" "openapi-spec-validator==0.9.0"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ELICENCE_DATA_DIR=$work/data ELICENCE_KEYS_DIR=$work/keys ELICENCE_TEMPLATES_DIR=$root/templates
export ELICENCE_VERIFY_BASE=https://zz.example.gov.cn RUST_LOG=error
for type in 11100000000013338W032 13100000MB0000020K001; do
    "$bin" directory show "$type" --example > "$work/record.json"
    qr=$("$bin" issue "$type" --file "$work/record.json" | tail -1)
    "$bin" trust export "$work/trust.json" > /dev/null
    "$venv/bin/python" "$root/tools/verify_token.py" "$work/trust.json" "$qr" > "$work/out.json"
    grep -q '"result": "authentic"' "$work/out.json"
    # Flip one base32 character in the middle of the signed bytes: must not verify.
    i=$(( ${#qr} / 2 )); c=${qr:$i:1}; [ "$c" = A ] && r=B || r=A
    if "$venv/bin/python" "$root/tools/verify_token.py" "$work/trust.json" "${qr:0:$i}$r${qr:$((i+1))}" > /dev/null; then
        echo "interop: a tampered token verified" >&2
        exit 1
    fi
done
echo "interop: tokens verified by pycose + cryptography; tampered tokens refused"
# The OpenAPI document integrators generate clients from must be a valid OpenAPI 3 document.
"$bin" openapi > "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
echo "interop: the OpenAPI document validates"
