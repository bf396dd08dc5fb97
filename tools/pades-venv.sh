#!/usr/bin/env bash
# Builds target/pades-venv with pyHanko (pinned), which the PAdES tests validate signed licence
# PDFs with (`pyhanko sign validate --trust root.pem`). Idempotent; prints the venv's bin folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/pades-venv
if [ ! -x "$venv/bin/pyhanko" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        pyhanko==0.38.0 pyhanko-cli==0.6.0 pyhanko-certvalidator==0.33.0 "cryptography==50.0.2" >&2
fi
echo "$venv/bin"
