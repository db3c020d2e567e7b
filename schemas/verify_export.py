#!/usr/bin/env python3
"""Verify a Concord log export (JSON Lines, e.g. `concord log export DIR`)
independently of Concord's code, following schemas/README.md.
Exit 0 and print "ok N events" when the chain holds; exit 1 and name the
first bad seq otherwise."""
import hashlib, json, sys

def verify(lines):
    prev, expected = "0" * 64, 1
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as e:
            return expected, f"unreadable record: {e}"
        if event.get("seq") != expected:
            return expected, f"expected seq {expected}, found {event.get('seq')}"
        if event.get("prev_hash") != prev:
            return expected, "prev_hash does not match the previous event's hash"
        stored = event.pop("hash", None)
        canonical = json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        computed = hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()
        if computed != stored:
            return expected, f"stored hash {stored} != computed {computed}"
        prev, expected = stored, expected + 1
    return None, expected - 1

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin as f:
        bad, info = verify(f)
    if bad is None:
        print(f"ok {info} events")
        sys.exit(0)
    print(f"BROKEN at seq {bad}: {info}")
    sys.exit(1)
