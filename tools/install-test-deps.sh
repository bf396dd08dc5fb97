#!/usr/bin/env bash
# Installs the Debian packages the tests call (a fresh machine has none of them). Idempotent.
set -euo pipefail
needed=()
command -v python3 >/dev/null || needed+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || needed+=(python3-venv)
command -v pg_isready >/dev/null || needed+=(postgresql-client)
if [ ${#needed[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${needed[@]}"
fi
echo "test dependencies present"
