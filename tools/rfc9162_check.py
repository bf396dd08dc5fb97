#!/usr/bin/env python3
"""An independent check of RFC 9162 Merkle proofs: the verification algorithms of §2.1.3.2
(inclusion) and §2.1.4.2 (consistency) written from the RFC with nothing but hashlib, sharing
no code with the service. Reads one JSON object per line on stdin:

    {"inclusion": [index, size], "leaf": hex, "proof": [hex…], "root": hex, "expect": true}
    {"consistency": [old, new], "old_root": hex, "new_root": hex, "proof": [hex…], "expect": true}

and exits 1 when any answer differs from `expect`, printing the first few that did.
"""
import hashlib
import json
import sys


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first == 0 or first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first & (first - 1) == 0:  # a power of two: prepend the old root
        proof = [first_hash] + proof
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def main():
    checked, wrong = 0, []
    for line in sys.stdin:
        case = json.loads(line)
        proof = [bytes.fromhex(h) for h in case["proof"]]
        if "inclusion" in case:
            index, size = case["inclusion"]
            answer = verify_inclusion(index, size, bytes.fromhex(case["leaf"]), proof,
                                      bytes.fromhex(case["root"]))
        else:
            old, new = case["consistency"]
            answer = verify_consistency(old, new, bytes.fromhex(case["old_root"]),
                                        bytes.fromhex(case["new_root"]), proof)
        checked += 1
        if answer != case["expect"]:
            wrong.append(line.strip()[:200])
    for line in wrong[:5]:
        print("disagrees:", line, file=sys.stderr)
    print(f"{checked} proofs checked, {len(wrong)} disagreements")
    sys.exit(1 if wrong or checked == 0 else 0)


if __name__ == "__main__":
    main()
