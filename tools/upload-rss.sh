#!/usr/bin/env bash
# Peak memory and disk of `elicence serve` (release build) while hostile and large batches are
# uploaded (issue #12, item 4): a body declaring 1 GiB + 1, 1 GiB + 1 streamed without a length,
# a 1.07 GB zip that is accepted and converted, a zip bomb (3 GB of zeros in ~3 MB), 10,000
# entries sharing one 10 MiB stream, a 400,000-entry zip, a manifest that is one 496 MiB line and
# a zip with the most entries allowed (201,000). For each it prints the answer, the server's peak
# RSS during that upload (VmHWM, reset before each through /proc/PID/clear_refs) and what the
# data folder (and, on PostgreSQL, the blob_parts table) holds afterwards.
#
#   tools/upload-rss.sh            (SQLite, blobs in a folder)
#   tools/upload-rss.sh postgres://postgres@127.0.0.1:5432/rss   (blobs in the database; the
#                                  database must exist and be empty)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ELICENCE_BIN:-$PWD/target/release/elicence}
[ -x "$bin" ] || cargo build --release
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
export ELICENCE_DATA_DIR=$work/data ELICENCE_KEYS_DIR=$work/keys ELICENCE_LISTEN=127.0.0.1:18931
export ELICENCE_TEMPLATES_DIR=$PWD/templates RUST_LOG=warn
# QR codes on the loopback address it listens on: development mode allows them.
export ELICENCE_MODE=development
[ -n "${1:-}" ] && export ELICENCE_DATABASE_URL=$1
base=http://$ELICENCE_LISTEN

python3 - "$work" <<'EOF'
import os, struct, sys, zipfile
work = sys.argv[1]
header = b"type_code,number,holder_name,holder_id,valid_from,valid_until,scan\n"
# Just under 1 GiB that is a good batch: a header-only manifest and 107 stored scans of random
# bytes (1.07 GB).
with zipfile.ZipFile(f"{work}/big.zip", "w", zipfile.ZIP_STORED) as z:
    z.writestr("manifest.csv", header)
    for i in range(107):
        z.writestr(f"scans/{i:03}.png", os.urandom(10_000_000))
# A bomb: 300 entries of 10 MiB of zeros, deflated (each under the scan limit).
zeros = bytes(10 << 20)
with zipfile.ZipFile(f"{work}/bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.csv", header)
    for i in range(300):
        z.writestr(f"scans/{i:03}.png", zeros)
# Overlapping entries: 10,000 central-directory entries all pointing at one 10 MiB stream.
with zipfile.ZipFile(f"{work}/one.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.csv", header)
    z.writestr("scans/00000.png", zeros)
data = open(f"{work}/one.zip", "rb").read()
eocd = len(data) - 22
size, start = struct.unpack("<II", data[eocd + 12:eocd + 20])
records, at = [], start
while at < eocd:
    n, m, k = struct.unpack("<HHH", data[at + 28:at + 34])
    records.append(data[at:at + 46 + n + m + k]); at += 46 + n + m + k
scan = records[1]
extra = [scan.replace(b"00000", f"{i:05}".encode()) for i in range(1, 10_000)]
directory = b"".join(records + extra)
tail = bytearray(data[eocd:])
struct.pack_into("<HHI", tail, 8, len(records) + len(extra), len(records) + len(extra), len(directory))
open(f"{work}/overlap.zip", "wb").write(data[:start] + directory + bytes(tail))
# 400,000 empty entries: refused from the end record, before the central directory is read.
with zipfile.ZipFile(f"{work}/many.zip", "w", zipfile.ZIP_STORED) as z:
    z.writestr("manifest.csv", header)
    for i in range(400_000):
        z.writestr(f"scans/{i:06}.png", b"")
# The most entries allowed (a scan per row of the default 200,000, and 1,000 folders).
with zipfile.ZipFile(f"{work}/most.zip", "w", zipfile.ZIP_STORED) as z:
    z.writestr("manifest.csv", header)
    for i in range(200_999):
        z.writestr(f"scans/{i:06}.png", b"")
# A manifest that is one 496 MiB line, deflated to ~500 KB.
with zipfile.ZipFile(f"{work}/longline.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.csv", header + b"x" * (496 << 20))
EOF

"$bin" keys init >/dev/null 2>&1 || true
token=$("$bin" token create --department 11330122MB0000001M --roles clerk --name rss --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$bin" serve >"$work/serve.log" 2>&1 &
server=$!
until curl -sf "$base/healthz" >/dev/null; do sleep 0.2; done
echo "server pid $server, idle RSS $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$server/status)"

peak() { awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$server/status; }
reset_peak() { echo 5 >/proc/$server/clear_refs; }
stored() { # the data folder, and on PostgreSQL the upload parts in the database
    echo -n "data folder $(du -sm "$ELICENCE_DATA_DIR" 2>/dev/null | cut -f1 || echo 0) MB"
    case "${ELICENCE_DATABASE_URL:-}" in postgres*)
        echo -n ", $(psql -tA "$ELICENCE_DATABASE_URL" -c 'SELECT count(*) FROM blob_parts') upload parts in the database";;
    esac
}

wait_job() { # polls the job at $1 until it ends
    while :; do
        state=$(curl -s -H "Authorization: Bearer $token" "$base$1" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["batch"]["state"])')
        [ "$state" = done ] || [ "$state" = failed ] && { echo "$state"; return; }
        sleep 0.5
    done
}

reset_peak
answer=$(python3 - "$ELICENCE_LISTEN" "$token" <<'EOF'
import socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
s.sendall(f"POST /api/v1/batches HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {sys.argv[2]}\r\n"
          f"content-type: application/zip\r\ncontent-length: {(1 << 30) + 1}\r\n\r\n".encode())
s.settimeout(5)
print(s.recv(100).split(b"\r\n")[0].decode())
EOF
)
echo "declared 1 GiB + 1, headers only: $answer; peak $(peak); $(stored)"

reset_peak
code=$(head -c $(((1 << 30) + 1)) /dev/zero | curl -s -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $token" -H 'content-type: application/zip' \
    -X POST -T - "$base/api/v1/batches" || true)
echo "1 GiB + 1 streamed without a length: $code; peak $(peak); $(stored)"

for case in big bomb overlap many longline most; do
    reset_peak
    size=$(du -m "$work/$case.zip" | cut -f1)
    start=$(date +%s.%N)
    code=$(curl -s -o "$work/answer.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
        -H 'content-type: application/zip' --data-binary "@$work/$case.zip" "$base/api/v1/batches")
    took=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    line="$case.zip ($size MB): $code in $took s"
    if [ "$code" = 202 ]; then
        location=/api/v1/batches/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["batch"]["id"])' "$work/answer.json")
        line="$line, job $(wait_job "$location")"
        sleep 1 # the job's upload is deleted just after it ends
    else
        line="$line ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["message"][:90])' "$work/answer.json"))"
    fi
    echo "$line; peak $(peak); $(stored)"
done
echo "server peak over the whole run is the largest of the above"
