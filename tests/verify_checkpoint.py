#!/usr/bin/env python3
"""Verify a Concord audit export (`GET /v1/audit/export`, JSON Lines)
against the signed checkpoint it was taken against, written from
schemas/README.md and docs/design.md alone: Python's standard library,
schemas/verify_export.py (the chain, from the same text) and PyNaCl for
Ed25519.

usage: verify_checkpoint.py EXPORT NOTE KEY

EXPORT is a full export (seq 1 on); NOTE the signed note (the
Concord-Checkpoint header, base64-decoded); KEY the verifier key
(`concord-audit+<hex key id>+<base64 key>`, /v1/audit/checkpoints/key).
Exit 0 and print "ok <origin> <size>" when the note is signed by the key,
names the exported log, and the export's chain verifies and ends at the
checkpoint's size with the checkpoint's hash; exit 1 and print why not."""
import base64, hashlib, json, os, sys

import nacl.exceptions
import nacl.signing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "schemas"))
from verify_export import verify  # noqa: E402

DASH = "\u2014"


def fail(why):
    print(f"NOT VERIFIED: {why}")
    sys.exit(1)


def checkpoint(note, key):
    """(origin, size, hash hex) of NOTE if KEY signed it."""
    name, key_id, key_b64 = key.strip().split("+", 2)
    typed = base64.b64decode(key_b64, validate=True)
    if typed[:1] != b"\x01" or len(typed) != 33:
        fail("the key is not an Ed25519 key")
    public = typed[1:]
    wanted = hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4]
    if wanted.hex() != key_id:
        fail("the key's id does not match it")
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    for line in signatures.splitlines():
        if not line.startswith(DASH + " "):
            continue
        signer, _, sig_b64 = line[2:].partition(" ")
        sig = base64.b64decode(sig_b64)
        if signer != name or len(sig) != 68 or sig[:4] != wanted:
            continue
        try:
            nacl.signing.VerifyKey(public).verify(body.encode(), sig[4:])
        except nacl.exceptions.BadSignatureError:
            fail(f"the signature of {name} does not verify")
        origin, size, hash_b64 = body.split("\n")[:3]
        return origin, int(size), base64.b64decode(hash_b64, validate=True).hex()
    fail(f"the note is not signed by {name}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail(__doc__)
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    with open(sys.argv[2], encoding="utf-8") as f:
        note = f.read()
    with open(sys.argv[3], encoding="utf-8") as f:
        key = f.read()
    origin, size, head = checkpoint(note, key)
    parts = origin.split("/")
    if len(parts) != 3 or parts[0] != "concord":
        fail(f"origin {origin!r} is not concord/<service>/<log identity>")
    bad, info = verify(data)
    if bad is not None:
        fail(f"BROKEN at seq {bad}: {info}")
    lines = [json.loads(line) for line in data.split(b"\n") if line]
    if info != size:
        fail(f"the export holds {info} events; the checkpoint {size}")
    if size and (lines[-1]["service"] != parts[1] or lines[-1]["hash"] != head):
        fail(f"seq {size} is not the checkpoint's ({parts[1]}, {head})")
    print(f"ok {origin} {size}")
