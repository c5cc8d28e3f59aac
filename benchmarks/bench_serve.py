"""Serving throughput: `textgen serve` under 1, 8 and 32 concurrent clients against sentences one at a time.

Starts `textgen serve CKPT` on a free loopback port; each client (a thread with one keep-alive connection)
sends one-sentence beam-5 /translate requests for `--seconds`. The baseline is the same sentences decoded
one at a time through the Python API (no HTTP, no batching window): what a server without batching
could do at best. Writes results/speed/bench-serve.json (requests/s, p50/p99 latency per level, the ratio).

    python benchmarks/bench_serve.py --checkpoint checkpoints/translate-multi30k.pt
    python benchmarks/bench_serve.py --checkpoint toy.pt --sources sentences.txt --seconds 3
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from textgen.results import invocation, make_result, write_result

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def sentences_from(args, translator) -> tuple[list[str], dict]:
    from textgen.data.parallel import load_parallel, read_lines

    if args.sources:
        lines = [line for line in read_lines(args.sources) if line.strip()]
        return lines[: args.sentences], {str(args.sources): hashlib.sha256(args.sources.read_bytes()).hexdigest()}
    corpus = load_parallel(args.corpus or translator.recipe.data.corpus)  # default: the model's own corpus
    return corpus.splits["valid"].sources[: args.sentences], corpus.sha256


def start_server(args, log: Path) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "textgen",
        "serve",
        str(args.checkpoint),
        "--port",
        "0",
        "--device",
        args.device,
        "--max-batch",
        str(args.max_batch),
        "--window-ms",
        str(args.window_ms),
        "--timeout-s",
        "60",
    ]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"serving .* on http://(127\.0\.0\.1:\d+)/", log.read_text())
        if found and "Application startup complete" in log.read_text():
            return proc, found.group(1)
        if proc.poll() is not None:
            sys.exit(f"textgen serve exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"textgen serve did not start in 120 s:\n{log.read_text()}")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def health(address: str) -> dict:
    conn = http.client.HTTPConnection(*address.split(":"), timeout=30)  # a new one: idle ones are closed after 5 s
    try:
        return request(conn, "GET", "/health")[1]
    finally:
        conn.close()


def timing(latencies: list[float], elapsed: float) -> dict:
    return {
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
    }


def run_level(address: str, clients: int, sentences: list[str], beam: int, seconds: float) -> dict:
    """`clients` threads, each one request in flight at a time, for `seconds`: throughput and latencies."""
    host, port = address.split(":")
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        mine, bad = [], []
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            source = sentences[next(counter) % len(sentences)]
            start = time.perf_counter()
            try:
                status, body = request(conn, "POST", "/translate", {"sources": [source], "beam": beam})
            except (OSError, http.client.HTTPException, ValueError) as exc:
                bad.append(f"{type(exc).__name__}: {exc}")
                conn.close()  # http.client reconnects on the next request
                continue
            mine.append(time.perf_counter() - start)
            if status != 200 or len(body.get("translations", [])) != 1:
                bad.append(f"{status} {body}")
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        **timing(latencies, elapsed),
        **({"first_error": errors[0]} if errors else {}),
    }


def one_at_a_time(translator, sentences: list[str], beam: int, seconds: float) -> dict:
    """The same sentences through the Python API, one call per sentence, for `seconds`."""
    latencies = []
    start = time.perf_counter()
    for i in itertools.count():
        if time.perf_counter() - start >= seconds:
            break
        t0 = time.perf_counter()
        translator.translate([sentences[i % len(sentences)]], beam=beam)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "seconds": round(elapsed, 2), **timing(latencies, elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/translate-multi30k.pt"))
    parser.add_argument("--sources", type=Path, help="one sentence a line [default: the valid split of --corpus]")
    parser.add_argument("--corpus", help="parallel corpus for the sentences [default: the checkpoint's own]")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-serve.json"))
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        sys.exit(f"checkpoint {args.checkpoint} does not exist: train one, or give --checkpoint")
    import torch

    import textgen

    begin = time.perf_counter()
    translator = textgen.load(args.checkpoint, args.device)
    if translator.kind != "seq2seq":
        sys.exit(f"{args.checkpoint} holds a {translator.kind} model: the serving benchmark needs a seq2seq one")
    sentences, shas = sentences_from(args, translator)
    levels = [int(n) for n in args.levels.split(",")]
    metrics: dict = {
        "checkpoint": str(args.checkpoint),
        "device": args.device,
        "beam": args.beam,
        "sentences": len(sentences),
        "seconds_per_level": args.seconds,
        "max_batch": args.max_batch,
        "window_ms": args.window_ms,
        "torch_threads": torch.get_num_threads(),
    }
    one_at_a_time(translator, sentences, args.beam, min(2.0, args.seconds))  # warm-up
    alone = one_at_a_time(translator, sentences, args.beam, args.seconds)
    del translator
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_server(args, Path(tmp) / "serve.log")
        try:
            run_level(address, 4, sentences, args.beam, min(2.0, args.seconds))  # warm-up
            rows = {}
            for clients in levels:
                before = health(address)
                rows[clients] = run_level(address, clients, sentences, args.beam, args.seconds)
                after = health(address)
                batches = after["batches_run"] - before["batches_run"]
                rows[clients]["mean_batch"] = round(
                    (after["sentences_translated"] - before["sentences_translated"]) / max(1, batches), 1
                )
            metrics["server_health_after"] = health(address)
        finally:
            proc.terminate()
            proc.wait(30)
    metrics["one_at_a_time"] = alone
    metrics["levels"] = {str(k): v for k, v in rows.items()}
    top = max(levels)
    ratio = rows[top]["requests_per_s"] / alone["requests_per_s"]
    metrics[f"ratio_{top}_clients_over_one_at_a_time"] = round(ratio, 2)
    metrics[f"p99_ms_{top}_clients"] = rows[top]["p99_ms"]
    print(f"{'':<22}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'mean batch':>12}{'errors':>8}")
    print(
        f"{'one at a time (API)':<22}{alone['requests_per_s']:>12,.1f}{alone['p50_ms']:>10,.1f}"
        f"{alone['p99_ms']:>10,.1f}{1:>12}{0:>8}"
    )
    for clients, row in rows.items():
        print(
            f"{f'{clients} client(s), HTTP':<22}{row['requests_per_s']:>12,.1f}{row['p50_ms']:>10,.1f}"
            f"{row['p99_ms']:>10,.1f}{row['mean_batch']:>12}{row['errors']:>8}"
        )
    print(
        f"{top} clients / one at a time: {ratio:.1f}x (target >= 5x); p99 at {top} clients "
        f"{rows[top]['p99_ms']:,.0f} ms (target <= 1000 ms); beam {args.beam}, {args.checkpoint}, {args.device}"
    )
    write_result(
        args.out,
        make_result(metrics, shas, time.perf_counter() - begin, command=invocation("python benchmarks/bench_serve.py")),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
