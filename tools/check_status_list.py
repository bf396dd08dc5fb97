#!/usr/bin/env python3
"""Checks licences' status in a Token Status List (draft-ietf-oauth-status-list-17, CWT form)
made by the service, with generic libraries only: pycose and cbor2 for the COSE_Sign1, the
`token-status-list` package from PyPI for the 2-bit entries, and the trust list. It shares no
code with the service: it shows, and tests, that docs/FORMATS.md and SPEC §7 are enough.

    python3 tools/check_status_list.py trust.json list.cwt QR_TEXT=revoked QR_TEXT=valid …

For each QR text: derives the list URI from the code (its verify base, the issuer and index div
L), checks it is the list's `sub`, reads entry `index mod L` and compares it with the expected
status. Exits 0 when every one matches, 2 otherwise.
"""
import datetime
import sys
import zlib

import cbor2
from pycose.messages import CoseMessage
from token_status_list import BitArray

from verify_token import authenticate, decode_token, fail

LIST_LEN = 131_072
TYP, SUB, EXP, IAT, STATUS_LIST, TTL = 16, 2, 4, 6, 65533, 65534
STATUSES = {0: "valid", 1: "revoked", 2: "suspended", 3: "superseded"}


def read_list(trust, path):
    """The list's claims and entries, once its typ, signature and dates hold."""
    message = CoseMessage.decode(open(path, "rb").read())
    if message.phdr.get(TYP) != "application/statuslist+cwt":
        fail("the list's protected header has no typ application/statuslist+cwt")
    claims = cbor2.loads(message.payload)
    issuer = claims[SUB].rstrip("/").split("/")[-2]
    when = datetime.datetime.fromtimestamp(claims[IAT], datetime.timezone.utc)
    authenticate(message, trust, issuer, when)
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    if now >= claims[EXP]:
        fail("the status list is past its exp: stale")
    status_list = claims[STATUS_LIST]
    entries = BitArray(status_list["bits"], zlib.decompress(status_list["lst"]))
    return claims, entries


def main(trust_path, list_path, checks):
    import json
    trust = json.load(open(trust_path))
    claims, entries = read_list(trust, list_path)
    wrong = 0
    for check in checks:
        qr_text, expected = check.rsplit("=", 1)
        _, token = decode_token(qr_text)
        index = token[-65538][10]
        base = qr_text.rsplit("/V/", 1)[0]
        uri = f"{base}/api/v1/status-lists/{token[1]}/{index // LIST_LEN}"
        if uri != claims[SUB]:
            fail(f"the code's list is {uri}, this list is {claims[SUB]}")
        found = STATUSES[entries[index % LIST_LEN]]
        print(f"{token[7].decode()}: entry {index % LIST_LEN} is {found} (expected {expected})")
        wrong += found != expected
    sys.exit(2 if wrong else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
