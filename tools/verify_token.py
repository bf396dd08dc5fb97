#!/usr/bin/env python3
"""Reference offline check of an e-licence QR token with generic libraries only (pycose, cbor2,
cryptography) and the trust list, following docs/FORMATS.md. It shares no code with the service:
it exists to show, and to test, that the format document is enough to build a verifier.

    pip install pycose "cbor2<6" cryptography   # pycose 1.1 cannot read cbor2 6's tuples
    python3 tools/verify_token.py trust.json "HTTPS://ZZ.EXAMPLE.GOV.CN/V/2KCE…"

Checks signature, signer chain (root pinned from the trust list), EKU, issuer and dates; it does
not consult status lists (tools/check_status_list.py does that step). Prints the claims as JSON and exits
0 when the token is authentic and within its dates, 2 otherwise.
"""
import base64
import datetime
import hashlib
import json
import sys

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.headers import KID
from pycose.messages import CoseMessage

SIGNER_EKU = "2.25.165064954062291072181676185094143684167"
ORGANIZATION_IDENTIFIER = "2.5.4.97"


def fail(reason):
    print(json.dumps({"result": "not_valid", "reason": reason}, ensure_ascii=False))
    sys.exit(2)


def authenticate(message, trust, iss, when):
    """The trust-list signer of `iss` whose certificate, chained to the list's root, valid at
    `when` and carrying the signer EKU, verifies `message`'s signature; fails otherwise."""
    kid = message.phdr[KID]
    root = x509.load_pem_x509_certificate(trust["roots"][0].encode())
    kid_text = base64.urlsafe_b64encode(kid).rstrip(b"=").decode()
    for signer in trust["signers"]:
        if signer["kid"] != kid_text:
            continue
        cert = x509.load_pem_x509_certificate(signer["certificate"].encode())
        if hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()[:8] != kid:
            continue
        root.public_key().verify(cert.signature, cert.tbs_certificate_bytes)  # chains to the root
        if not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
            continue
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if SIGNER_EKU not in [e.dotted_string for e in ekus]:
            continue
        subject_uscc = cert.subject.get_attributes_for_oid(x509.ObjectIdentifier(ORGANIZATION_IDENTIFIER))
        if not subject_uscc or subject_uscc[0].value != iss:
            continue
        raw = cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        message.key = OKPKey(crv=Ed25519, x=raw)
        if not message.verify_signature():
            fail("bad signature")
        if signer["status"] == "revoked":
            fail("signer revoked")
        return signer
    fail("unknown signer: no certificate with this kid chains to the root for " + iss)


def decode_token(qr_text):
    """The COSE_Sign1 message and claims of a QR text or its base32 part."""
    b32 = qr_text.rsplit("/V/", 1)[-1]
    token = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    if not token.startswith(b"\xd2"):
        fail("not a tagged COSE_Sign1 (tag 18)")
    message = CoseMessage.decode(token)  # tag 18: a COSE_Sign1
    return message, cbor2.loads(message.payload)


def main(trust_path, qr_text):
    message, claims = decode_token(qr_text)
    iss, iat, cti = claims[1], claims[6], claims[7].decode()
    trust = json.load(open(trust_path))
    when = datetime.datetime.fromtimestamp(iat, datetime.timezone.utc)
    signer = authenticate(message, trust, iss, when)
    qr = claims[-65538]
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    if 4 in claims and now >= claims[4]:
        fail("expired")
    print(json.dumps({
        "result": "authentic",
        "id": cti, "issuer": iss, "department": signer["department"], "kid": signer["kid"],
        "licence": qr[4], "holder": qr[5], "holder_id": qr[6],
        "valid_from": qr[7], "valid_until": qr[8], "status_index": qr[10],
        "record_sha256": qr[9].hex(),
    }, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as error:  # a damaged code is an answer, not a crash
        fail(f"malformed: {error}")
