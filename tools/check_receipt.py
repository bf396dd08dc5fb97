#!/usr/bin/env python3
"""Reference offline check of a transparency-log receipt (SPEC §16, docs/FORMATS.md §11) with
generic libraries only (pycose, cbor2, cryptography) and the RFC 9162 algorithms of
tools/rfc9162_check.py: that ENTRY (a version's full record) is in the tree of the signed HEAD,
as RECEIPT (a COSE Receipt, RFC 9942, RFC9162_SHA256) proves. Shares no code with the service.

    python3 tools/check_receipt.py trust.json head.cose receipt.cose record.cose

Prints {"result": "logged", "index", "size"} and exits 0, or {"result": "not_logged", "reason"}
and exits 2.
"""
import base64
import datetime
import hashlib
import json
import sys

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pycose.headers import KID
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage

from rfc9162_check import verify_inclusion

LOG_EKU = "2.25.206354783276526317115283504312310018404"
VDS, VDP, RFC9162_SHA256, INCLUSION = 395, 396, 1, -1


def fail(reason):
    print(json.dumps({"result": "not_logged", "reason": reason}))
    sys.exit(2)


def log_key(trust, kid, when):
    """The trust list's log key named `kid`: chained to the list's root, valid at `when`, with
    the log EKU."""
    root = x509.load_pem_x509_certificate(trust["roots"][0].encode())
    kid_text = base64.urlsafe_b64encode(kid).rstrip(b"=").decode()
    for entry in trust["signers"]:
        if entry.get("purpose") != "log" or entry["kid"] != kid_text:
            continue
        cert = x509.load_pem_x509_certificate(entry["certificate"].encode())
        if hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()[:8] != kid:
            continue
        root.public_key().verify(cert.signature, cert.tbs_certificate_bytes)
        if not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
            continue
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if LOG_EKU not in [e.dotted_string for e in ekus]:
            continue
        raw = cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return OKPKey(crv=Ed25519, x=raw)
    fail("no log key of the trust list has this kid")


def main(trust_path, head_path, receipt_path, entry_path):
    trust = json.load(open(trust_path))
    head = CoseMessage.decode(open(head_path, "rb").read())
    claims = cbor2.loads(head.payload)
    size, root, time = claims[1], claims[2], claims[3]
    when = datetime.datetime.fromtimestamp(time, datetime.timezone.utc)
    head.key = log_key(trust, head.phdr[KID], when)
    if not head.verify_signature():
        fail("the head's signature does not verify")

    receipt = CoseMessage.decode(open(receipt_path, "rb").read())
    if receipt.phdr.get(VDS) != RFC9162_SHA256:
        fail("not an RFC9162_SHA256 receipt")
    if receipt.payload is not None:
        fail("the receipt's payload must be detached")
    proofs = receipt.uhdr[VDP][INCLUSION]
    tree_size, index, path = cbor2.loads(proofs[0])
    if tree_size != size:
        fail(f"the receipt is for the tree of {tree_size}, the head for {size}")
    leaf = hashlib.sha256(b"\x00" + open(entry_path, "rb").read()).digest()
    if not verify_inclusion(index, tree_size, leaf, path, root):
        fail("the proof does not lead from the entry to the head's root")
    # The receipt signs the root it proves (detached payload).
    receipt.key = log_key(trust, receipt.phdr[KID], when)
    if not receipt.verify_signature(detached_payload=root):
        fail("the receipt's signature does not verify")
    print(json.dumps({"result": "logged", "index": index, "size": tree_size}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
