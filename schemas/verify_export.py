#!/usr/bin/env python3
"""Verify a Concord log export (JSON Lines, e.g. `concord log export DIR`)
independently of Concord's code, following schemas/README.md alone, with
Python's standard library only.

usage: verify_export.py [FILE] [--from N --anchor HASH]

FILE (default: standard input) is read as bytes. --from and --anchor
verify a partial export (`concord log export --from N`): its first line
must be seq N and link to HASH, the hash of seq N-1 known from elsewhere.
Exit 0 and print "ok N events" when every line is canonical, every data
present has its data_digest and the chain holds; exit 1 and print "BROKEN at seq S: why", S being the seq found in
the first bad line (the seq expected there when it has none)."""
import argparse, hashlib, json, sys

INTEGER_MAX = 2**53 - 1


def canonical(x):
    """RFC 8785 for the values a Concord event holds (no fractions)."""
    if isinstance(x, dict):
        keys = sorted(x, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code units
        return "{" + ",".join(canonical(k) + ":" + canonical(x[k]) for k in keys) + "}"
    if isinstance(x, list):
        return "[" + ",".join(canonical(v) for v in x) + "]"
    if isinstance(x, str):  # escapes only ", \ and U+0000-U+001F (lowercase hex)
        return json.dumps(x, ensure_ascii=False)
    if x is None or isinstance(x, bool):
        return json.dumps(x)
    if isinstance(x, int) and -INTEGER_MAX <= x <= INTEGER_MAX:
        return str(x)
    raise ValueError(f"number {x} is not an integer within ±(2^53-1)")


def unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def no_fraction(text):
    raise ValueError(f"number {text} is not an integer")


def verify(data, first=1, anchor="0" * 64):
    """Returns (None, events verified) or (first bad seq, why)."""
    prev, expected = anchor, first
    lines = data.split(b"\n")
    unterminated = lines.pop()  # b"" when the last line ends with LF
    if unterminated:
        lines.append(unterminated)
    for raw in lines:
        seq = expected
        try:
            event = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys,
                               parse_float=no_fraction, parse_constant=no_fraction)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
            if type(event.get("seq")) is int:
                seq = event["seq"]
            if canonical(event).encode("utf-8") != raw:
                return seq, "line is not in canonical form (RFC 8785)"
        except ValueError as e:  # JSON, UTF-8 and range errors all are
            return seq, f"unreadable line: {e}"
        if seq != expected:
            return seq, f"expected seq {expected}, found seq {seq}"
        if event.get("prev_hash") != prev:
            return seq, "prev_hash does not match the previous event's hash"
        if "data" in event:  # an erased event has none, and still links
            digest = hashlib.sha256(canonical(event.pop("data")).encode("utf-8")).hexdigest()
            if digest != event.get("data_digest"):
                return seq, f"data_digest {event.get('data_digest')} != digest of the data {digest}"
        stored = event.pop("hash", None)
        computed = hashlib.sha256((prev + canonical(event)).encode("utf-8")).hexdigest()
        if computed != stored:
            return seq, f"stored hash {stored} != computed {computed}"
        prev, expected = stored, expected + 1
    if unterminated:
        return expected - 1, "the last line does not end with a line feed"
    return None, expected - first


if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("file", nargs="?")
    args.add_argument("--from", dest="first", type=int, default=1)
    args.add_argument("--anchor", default="0" * 64)
    a = args.parse_args()
    if (a.first == 1) != (a.anchor == "0" * 64):
        args.error("a partial export needs both --from N (N > 1) and --anchor HASH")
    if a.file:
        with open(a.file, "rb") as f:
            data = f.read()
    else:
        data = sys.stdin.buffer.read()
    bad, info = verify(data, a.first, a.anchor)
    if bad is None:
        print(f"ok {info} events")
        sys.exit(0)
    print(f"BROKEN at seq {bad}: {info}")
    sys.exit(1)
