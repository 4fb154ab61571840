"""What signing costs a cross-node request, per suite, beside the same message handled unsigned
(issue 16 §5 asks which part of a cross-node prefill's time is signing).

    python -m benchmarks.bench_exchange_signing [--messages 2000]

For each suite (Ed25519 with SHA-256; SM2 with SM3), in one process and one run: the sender's
`seal`, the exchange's `countersign` (its check of the sender's signature, then its stamp) and the
receiver's `open_envelope` (both signatures checked), each timed over the same prefill-sized
request body, then the suite's `sign` and `verify` alone over the signed header; the baseline is
the same header built, serialised canonically and hashed with SHA-256, with no signature. A
request and its answer each go through all three steps, so a cross-node prefill pays twice the
sum. Writes benchmarks/results/exchange-signing.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import orjson

from pipelines.exchange.directory import EXCHANGE, Directory, Member, MemberKey
from pipelines.exchange.envelope import Signer, countersign, open_envelope, seal
from pipelines.exchange.replay import ReplayGuard
from pipelines.exchange.suites import SUITES

RESULTS = Path(__file__).parent / "results"
BODY = orjson.dumps({"case_id": "C-1", "department": "JYJ", "purpose": "SCHOOL_ENROLL",
                     "template": "SCHOOL_ENROLL",
                     "subjects": {"child": "510104201501011234", "mother": "510104198803035627"},
                     "fields": ["child.name", "child.birth_date", "child.hukou_division",
                                "mother.name", "mother.hukou_address"]})


def world(suite_name: str):
    s = SUITES[suite_name]
    keys = {code: s.generate() for code in ("500000", "510000", EXCHANGE)}
    d = Directory()
    for code, k in keys.items():
        d.add(Member(code, code, "", (MemberKey("k1", s.name, k.public),)))
    return d, {code: Signer(code, "k1", s.name, k.private) for code, k in keys.items()}


def timed(fn, n: int) -> tuple[float, list]:
    """Median µs of fn(i) over n calls, and the results."""
    out, times = [], []
    for i in range(n):
        t = time.perf_counter()
        out.append(fn(i))
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6, out


def baseline(i: int) -> str:
    header = {"v": 1, "kind": "request", "request_id": f"r-{i}", "nonce": os.urandom(16).hex(),
              "sender": "500000", "receiver": "510000",
              "sent_at": dt.datetime.now(dt.UTC).isoformat(), "suite": "none", "key_id": "k1",
              "body_digest": hashlib.sha256(BODY).hexdigest()}
    return hashlib.sha256(orjson.dumps(header, option=orjson.OPT_SORT_KEYS)).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                      f"{platform.python_version()}", "body_bytes": len(BODY),
           "messages": args.messages, "started": dt.datetime.now(dt.UTC).isoformat()}
    base_us, _ = timed(baseline, args.messages)
    out["baseline_unsigned_us"] = base_us
    print(f"baseline (header, canonical JSON, SHA-256, no signature): {base_us:8.1f} µs")
    for name in SUITES:
        n = args.messages
        d, signers = world(name)
        now = dt.datetime.now(dt.UTC)
        seal_us, sealed = timed(lambda i: seal("request", f"r-{i}", "510000", BODY,
                                               signers["500000"], now), n)
        exchange_seen, inbox = ReplayGuard(), ReplayGuard()
        stamp_us, stamped = timed(lambda i: countersign(sealed[i], d, signers[EXCHANGE],
                                                        exchange_seen, now), n)
        open_us, _ = timed(lambda i: open_envelope(stamped[i], d, "510000", inbox, now), n)
        per_message = seal_us + stamp_us + open_us
        # the suite's two primitives alone, over the same signed header bytes
        s, pair, header = SUITES[name], SUITES[name].generate(), sealed[0].signed_bytes()
        s.sign(pair.private, header)  # a key's first signature may set up per-key state
        sign_us, signatures = timed(lambda i: s.sign(pair.private, header), n)
        verify_us, ok = timed(lambda i: s.verify(pair.public, signatures[i], header), n)
        assert all(ok)
        out[name] = {"messages": n, "sign_us": sign_us, "verify_us": verify_us,
                     "seal_us": seal_us, "countersign_us": stamp_us,
                     "open_us": open_us, "per_message_us": per_message,
                     "per_exchange_ms": 2 * per_message / 1000}
        print(f"{name:15s} sign {sign_us:8.1f} µs  verify {verify_us:8.1f} µs")
        print(f"{'':15s} seal {seal_us:8.1f} µs  countersign {stamp_us:8.1f} µs  open "
              f"{open_us:8.1f} µs  = {per_message / 1000:6.2f} ms a message, "
              f"{2 * per_message / 1000:6.2f} ms a request and its answer ({n} messages)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exchange-signing.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
