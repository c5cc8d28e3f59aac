"""Server memory under varied requests: RSS of `textgen serve` after a warm-up and after 2,000 more requests.

Each request draws its size at random (seeded): 1-63 sources of 1-2 joined validation sentences, beam
1-16 (now and then 32 or 64), some n-best lists, some sampled: many tensor shapes, the load under which
an allocator that keeps freed memory makes a server grow. Without --checkpoint it first trains a small
multi30k model (the translate-multi30k architecture, a few updates: memory depends on shapes, not on
quality). Writes results/speed/serve-memory.json: RSS after the warm-up, at the end, the growth, and after
every --every requests.

    python benchmarks/bench_serve_memory.py
    python benchmarks/bench_serve_memory.py --checkpoint checkpoints/translate-multi30k.pt --requests 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_serve import start_server  # noqa: E402
from textgen.results import invocation, make_result, write_result  # noqa: E402


def train_small(folder: Path, steps: int) -> Path:
    """The translate-multi30k recipe for `steps` updates: the real vocabulary and layer sizes, quickly."""
    out = folder / "multi30k-small.pt"
    overrides = [f"train.max_steps={steps}", "train.valid_subset=20", "train.log_every=10"]
    cmd = [sys.executable, "-m", "textgen", "train", "-r", "translate-multi30k", "-o", str(out)]
    cmd += ["--run-dir", str(folder / "run"), *[a for o in overrides for a in ("--set", o)]]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out


def rss_mb(pid: int) -> float:
    """The server's resident size once idle: a second after its last answer, when it has tidied up."""
    time.sleep(1.0)
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024, 1)


def varied_request(rng: random.Random, sentences: list[str]) -> dict:
    """1-63 sources (log-uniform) of 1-2 joined sentences; beam 1-16, now and then a large one (32 or 64 on
    up to 32 single sentences, within the default --max-work), some n-best lists, a fifth sampled."""
    count, joined = int(2 ** rng.uniform(0, 6)), rng.randint(1, 2)
    beam = rng.choice([1, 2, 3, 4, 5, 8, 12, 16])
    if rng.random() < 0.03:
        beam, count, joined = rng.choice([32, 64]), min(count, 32), 1
    sources = [" ".join(rng.choices(sentences, k=joined))[:1000] for _ in range(count)]
    if rng.random() < 0.2:
        return {"sources": sources, "sample": True, "temperature": 0.8, "seed": rng.randrange(2**31)}
    body = {"sources": sources, "beam": beam}
    if rng.random() < 0.2 and beam > 1:
        body["nbest"] = rng.randint(2, beam)
    return body


def send_all(address: str, bodies: list[dict], clients: int) -> list[str]:
    """POST every body to /translate from `clients` threads (one keep-alive connection each); the errors."""
    host, port = address.split(":")
    todo, errors, lock = list(enumerate(bodies)), [], threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        while True:
            with lock:
                if not todo:
                    break
                _, body = todo.pop()
            try:
                conn.request("POST", "/translate", json.dumps(body), {"Content-Type": "application/json"})
                response = conn.getresponse()
                text = response.read()
                if response.status != 200:
                    errors.append(f"{response.status} {text[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="seq2seq checkpoint [default: train a small one]")
    parser.add_argument("--train-steps", type=int, default=30, help="updates of the small model")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests, after the warm-up")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--every", type=int, default=250, help="RSS is also read after every N requests")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/speed/serve-memory.json"))
    args = parser.parse_args()
    import textgen
    from textgen.data.parallel import load_parallel

    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or train_small(Path(tmp), args.train_steps)
        translator = textgen.load(checkpoint, "cpu")
        corpus = load_parallel(translator.recipe.data.corpus)
        sentences, shas = corpus.splits["valid"].sources, corpus.sha256
        del translator
        rng = random.Random(args.seed)
        warmup = [varied_request(rng, sentences) for _ in range(args.warmup)]
        measured = [varied_request(rng, sentences) for _ in range(args.requests)]
        server_args = argparse.Namespace(
            checkpoint=checkpoint, device=args.device, max_batch=32, window_ms=10.0
        )  # what bench_serve.start_server reads
        proc, address = start_server(server_args, Path(tmp) / "serve.log")
        try:
            errors = send_all(address, warmup, args.clients)
            trace = [{"requests": 0, "rss_mb": rss_mb(proc.pid)}]
            for start in range(0, len(measured), args.every):
                errors += send_all(address, measured[start : start + args.every], args.clients)
                trace.append({"requests": min(start + args.every, len(measured)), "rss_mb": rss_mb(proc.pid)})
                print(f"{trace[-1]['requests']:>6} requests: RSS {trace[-1]['rss_mb']:,.1f} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    warm, end = trace[0]["rss_mb"], trace[-1]["rss_mb"]
    metrics = {
        "checkpoint": str(args.checkpoint) if args.checkpoint else f"trained here: {args.train_steps} updates",
        "device": args.device,
        "requests_warmup": args.warmup,
        "requests_measured": args.requests,
        "clients": args.clients,
        "seed": args.seed,
        "errors": len(errors),
        "rss_mb_after_warmup": warm,
        "rss_mb_end": end,
        "rss_growth_mb": round(end - warm, 1),
        "rss_mb_trace": trace,
        **({"first_error": errors[0]} if errors else {}),
    }
    print(f"RSS after {args.warmup} warm-up requests {warm:,.1f} MB, after {args.requests} more {end:,.1f} MB")
    write_result(
        args.out,
        make_result(
            metrics, shas, time.perf_counter() - begin, command=invocation("python benchmarks/bench_serve_memory.py")
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
