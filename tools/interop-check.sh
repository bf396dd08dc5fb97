#!/usr/bin/env bash
# Verifies QR tokens made by the `elicence` binary with tools/verify_token.py, which uses only
# generic libraries (pycose, cbor2, cryptography) and the exported trust list: the proof that a
# third party can build a verifier from docs/FORMATS.md. A tampered token must be refused. Then
# reads licences' statuses from an exported Token Status List with the `token-status-list`
# package (tools/check_status_list.py), checks a transparency-log receipt against a signed head
# (tools/check_receipt.py, with tools/rfc9162_check.py's RFC 9162 algorithms), and checks the
# OpenAPI document with an independent validator.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELICENCE_BIN:-$root/target/debug/elicence}
venv=$root/target/interop-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        pycose==1.1.0 "cbor2==5.9.0" "cryptography==50.0.2" "openapi-spec-validator==0.9.0"
fi
# Added after the venv first existed: installed into an older venv too.
if ! "$venv/bin/python" -c 'import token_status_list' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "token-status-list==0.1.0a2.dev1"
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

# Four licences of one department: one amended (its first version superseded), one suspended,
# one revoked, one left alone; the department's status list must say so to an outside reader.
food=11100000000013338W032
"$bin" directory show "$food" --example > "$work/record.json"
# `issue` prints the licence's identifier, then its QR text.
issue() { mapfile -t issued < <("$bin" issue "$food" --file "$work/record.json"); }
issue; amended=${issued[0]} first=${issued[1]}
issue; suspended=${issued[0]} suspended_qr=${issued[1]}
issue; revoked=${issued[0]} revoked_qr=${issued[1]}
issue; valid_qr=${issued[1]}
echo '{"holder_name": "示范县百味餐饮管理有限公司"}' > "$work/amend.json"
second=$("$bin" licence amend "$amended" --file "$work/amend.json" | tail -1)
"$bin" licence suspend "$suspended" --reason 整改 > /dev/null
"$bin" licence revoke "$revoked" --reason 注销 > /dev/null
"$bin" status-list export --issuer 11330122MB0000001M --list 0 "$work/list.cwt" > /dev/null
"$bin" trust export "$work/trust.json" > /dev/null
check_list() { "$venv/bin/python" "$root/tools/check_status_list.py" "$work/trust.json" "$work/list.cwt" "$@"; }
check_list "$first=superseded" "$second=valid" "$suspended_qr=suspended" "$revoked_qr=revoked" "$valid_qr=valid"
if check_list "$revoked_qr=valid" > /dev/null; then
    echo "interop: a revoked licence read as valid" >&2
    exit 1
fi
echo "interop: statuses read from the Token Status List by token-status-list agree"
# The last licence issued, proved in the county's log by a receipt against a signed head; another
# version's record must not pass for it.
"$bin" log head --out "$work/head.cose" > /dev/null
"$bin" log receipt "${issued[0]}" --out "$work/receipt.cose" --record "$work/record.cose" > /dev/null
"$bin" log receipt "$amended" --out "$work/other.cose" --record "$work/other-record.cose" > /dev/null
"$bin" trust export "$work/trust.json" > /dev/null
check_receipt() { "$venv/bin/python" "$root/tools/check_receipt.py" "$work/trust.json" "$work/head.cose" "$@"; }
check_receipt "$work/receipt.cose" "$work/record.cose" | grep -q '"result": "logged"'
if check_receipt "$work/receipt.cose" "$work/other-record.cose" > /dev/null; then
    echo "interop: a receipt proved another record" >&2
    exit 1
fi
echo "interop: a log receipt checked by pycose and the RFC 9162 algorithms against a signed head"
# The OpenAPI document integrators generate clients from must be a valid OpenAPI 3 document.
"$bin" openapi > "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
echo "interop: the OpenAPI document validates"
