"""Other users' latency while someone floods `kazi serve` with wrong passwords.

Starts `kazi serve` (the Kazi on PYTHONPATH, so two trees can be compared) on a fresh SQLite file, measures
the p50/p95 of other users' `GET /api/v1/me` (bearer tokens: no password hash of their own) alone, then while
`--attempts` wrong passwords are sent by `--concurrency` threads, through Basic and `POST /api/v1/login`.
Prints one JSON line: the latencies, the answers the attacker got and how long the flood took.

    PYTHONPATH=$PWD python bench/login_flood.py
    KAZI_LOGIN_ACCOUNT_FREE_FAILURES=1000000 KAZI_LOGIN_ADDRESS_FREE_FAILURES=1000000 \\
        PYTHONPATH=$PWD python bench/login_flood.py      # the hashing pool alone (many addresses and accounts)

The environment reaches the server, so the `KAZI_...` settings apply to it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kazi(*args: str, cwd: str) -> str:
    # run from a scratch folder: `python -m` puts the working directory before PYTHONPATH
    out = subprocess.run([sys.executable, "-m", "kazi.cli.main", *args], check=True, capture_output=True,
                         text=True, cwd=cwd)
    return out.stdout.strip()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _others(base: str, tokens: list[str], stop: threading.Event, out: list[float]) -> None:
    def one(token: str) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            while not stop.is_set():
                t = time.perf_counter()
                resp = c.get("/api/v1/me")
                out.append(time.perf_counter() - t)
                assert resp.status_code == 200, resp.text
                time.sleep(0.02)

    threads = [threading.Thread(target=one, args=(tok,)) for tok in tokens]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def _measure(base: str, tokens: list[str], seconds: float | None, attack: threading.Thread | None) -> list[float]:
    stop = threading.Event()
    lat: list[float] = []
    runner = threading.Thread(target=_others, args=(base, tokens, stop, lat))
    runner.start()
    if attack is not None:
        attack.start()
        attack.join()
    else:
        time.sleep(seconds or 5)
    stop.set()
    runner.join()
    return lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--others", type=int, default=4, help="other users polling /api/v1/me")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kazi-flood-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'kazi.sqlite3'}"
        _kazi("users", "add", "victim", "--password", "the-real-password", "--roles", "chw", "--db", db, cwd=tmp)
        tokens = []
        for i in range(args.others):
            _kazi("users", "add", f"other{i}", "--password", "other-password", "--roles", "chw", "--db", db, cwd=tmp)
            tokens.append(_kazi("users", "token", f"other{i}", "--db", db, cwd=tmp))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "kazi.cli.main", "serve", "--port", str(port), "--db", db,
                                   "--compute", "thread"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  cwd=tmp)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("kazi serve did not start")
                time.sleep(0.2)
            time.sleep(1)
            baseline = _measure(base, tokens, 6, None)

            answers: collections.Counter[int] = collections.Counter()
            counter = iter(range(args.attempts))
            lock = threading.Lock()

            def attacker() -> None:
                with httpx.Client(base_url=base, timeout=120) as c:
                    while True:
                        with lock:
                            i = next(counter, None)
                        if i is None:
                            return
                        if i % 2:
                            resp = c.get("/api/v1/me", auth=("victim", f"guess-{i}"))
                        else:
                            resp = c.post("/api/v1/login", json={"username": "victim", "password": f"guess-{i}"})
                        with lock:
                            answers[resp.status_code] += 1

            def attack() -> None:
                threads = [threading.Thread(target=attacker) for _ in range(args.concurrency)]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()

            t0 = time.perf_counter()
            flood = threading.Thread(target=attack)
            during = _measure(base, tokens, None, flood)
            flood_s = time.perf_counter() - t0
            right = httpx.post(f"{base}/api/v1/login", json={"username": "victim", "password": "the-real-password"})
        finally:
            server.terminate()
            server.wait(30)

    result = {
        "kazi": os.environ.get("PYTHONPATH", ""), "cpus": os.cpu_count(), "load": os.getloadavg()[0],
        "attempts": args.attempts, "concurrency": args.concurrency,
        "baseline_ms": {"n": len(baseline), "p50": _p(baseline, 0.5), "p95": _p(baseline, 0.95),
                        "mean": round(statistics.fmean(baseline) * 1000, 1)},
        "during_flood_ms": {"n": len(during), "p50": _p(during, 0.5), "p95": _p(during, 0.95),
                            "mean": round(statistics.fmean(during) * 1000, 1)},
        "flood_s": round(flood_s, 1), "attacker_answers": dict(sorted(answers.items())),
        "right_password_after_flood": right.status_code,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
