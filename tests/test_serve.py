"""`textgen serve` over real HTTP: a toy reversal model (and a tiny LM) in a server subprocess, an httpx client."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

for _module in ("starlette", "uvicorn", "pydantic", "httpx"):
    pytest.importorskip(
        _module,
        reason=f"textgen serve needs the serve extra ({_module} is not installed): pip install -e '.[test,serve]'",
    )

import httpx  # noqa: E402

from tests.conftest import ARCHS, REPO, write_recipe  # noqa: E402
from tests.test_cli_seq2seq import make_reversal_corpus, write_reversal_recipe  # noqa: E402

SOURCES = ["a b c d", "e f", "h g f e d", "a a b", "c", "b d f h", "g a", "f e d c b a"]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def train(argv: list[str]) -> None:
    from textgen.cli import main

    saved = sys.argv
    sys.argv = ["textgen", *argv]
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
    finally:
        sys.argv = saved


@pytest.fixture(scope="module")
def toy_mt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve-mt")
    recipe = write_reversal_recipe(
        folder / "rev.toml",
        make_reversal_corpus(folder),
        "toy reversal",
        hidden=64,
        train={"lr": 0.01, "max_tokens": 200, "epochs": 8, "valid_metric": "loss", "log_every": 50},
        decode={"beam": 3, "max_len_a": 1.0, "max_len_b": 2},
    )
    train(["train", "-r", str(recipe), "-o", str(folder / "rev.pt"), "--run-dir", str(folder / "run")])
    return folder / "rev.pt"


@pytest.fixture(scope="module", params=list(ARCHS))
def toy_lm(tmp_path_factory, request) -> Path:
    folder = tmp_path_factory.mktemp(f"serve-lm-{request.param}")
    (folder / "tiny.txt").write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 60)
    recipe = write_recipe(folder / "tiny.toml", folder / "tiny.txt", ARCHS[request.param], max_steps=10, eval_every=10)
    train(["train", "-r", str(recipe), "-o", str(folder / "lm.pt"), "--run-dir", str(folder / "run")])
    return folder / "lm.pt"


def start_server(ckpt: Path, log: Path, *options: str) -> Server:
    """`python -m textgen serve CKPT --port 0`; the port is read from the log line it writes once bound."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "textgen", "serve", str(ckpt), "--port", "0", "--device", "cpu", *options],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)/", log.read_text())
        if found:
            server = Server(proc, found.group(1), log)
            try:
                if httpx.get(server.url + "/health", timeout=5).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"textgen serve exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"textgen serve did not start:\n{log.read_text()}")


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def server(toy_mt, tmp_path_factory):
    srv = start_server(
        toy_mt,
        tmp_path_factory.mktemp("serve-log") / "server.log",
        "--window-ms",
        "30",
        "--max-sources",
        "8",
        "--max-input-chars",
        "200",
        "--max-work",
        "2000",
    )
    yield srv
    stop(srv)
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()


@pytest.fixture(scope="module")
def api(toy_mt):
    import textgen

    return textgen.load(toy_mt, "cpu")


def assert_json_error(response: httpx.Response, status: int | tuple[int, ...]) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert "\n" not in response.text.strip()
    body = response.json()
    assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]
    return body["error"]


def test_translate_equals_the_python_api(server, api):
    response = httpx.post(server.url + "/translate", json={"sources": SOURCES, "beam": 3})
    assert response.status_code == 200, response.text
    assert response.json() == {"translations": api.translate(SOURCES, beam=3)}
    assert response.json()["translations"][0] == "d c b a"  # the toy model has learnt to reverse
    nbest = httpx.post(server.url + "/translate", json={"sources": SOURCES[:2], "beam": 4, "nbest": 3}).json()
    expected = api.translate(SOURCES[:2], beam=4, nbest=3)
    assert [[h["text"] for h in hyps] for hyps in nbest["translations"]] == [[t for t, _ in e] for e in expected]
    assert [h["score"] for hyps in nbest["translations"] for h in hyps] == pytest.approx(
        [s for e in expected for _, s in e], abs=1e-4
    )
    greedy = httpx.post(server.url + "/translate", json={"sources": SOURCES, "beam": 1, "lenpen": None}).json()
    assert greedy["translations"] == api.translate(SOURCES, beam=1)
    sampled = [
        httpx.post(
            server.url + "/translate", json={"sources": SOURCES, "sample": True, "temperature": 0.7, "seed": 3}
        ).json()
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1] == {"translations": api.translate(SOURCES, sample=True, temperature=0.7, seed=3)}


def test_score_health_and_page(server, api, toy_mt):
    response = httpx.post(server.url + "/score", json={"sources": SOURCES[:3], "targets": ["d c b a", "f e", "x"]})
    assert response.status_code == 200, response.text
    got, expected = response.json()["scores"], [s.to_dict() for s in api.score(SOURCES[:3], ["d c b a", "f e", "x"])]
    assert [g["tokens"] for g in got] == [e["tokens"] for e in expected]
    assert [g["total"] for g in got] == pytest.approx([e["total"] for e in expected], abs=1e-4)
    assert [t["token"] for t in got[0]["per_token"]] == ["d", "c", "b", "a", "</s>"]
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["kind"] == "seq2seq" and health["model"] == str(toy_mt)
    assert health["vocab"] == {"src": len(api.vocabs.src), "tgt": len(api.vocabs.tgt)}
    assert re.fullmatch(r"([0-9a-f]{40}(-dirty)?|unknown)", health["git_commit"])
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and "fetch(" in page.text and "/translate" in page.text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page.text)  # no external assets
    assert str(toy_mt) in page.text


BAD = {
    "malformed JSON": ("POST", "/translate", b'{"sources": ["a b"', 400, "malformed JSON"),
    "not an object": ("POST", "/translate", b'["a b"]', 400, "must be a JSON object"),
    "NaN": ("POST", "/translate", b'{"sources": ["a"], "temperature": NaN}', 400, "must be a finite number"),
    "not UTF-8": ("POST", "/translate", b'{"sources": ["\xff\xfe\xfa"]}', 400, "malformed JSON"),
    "missing field": ("POST", "/translate", {"beam": 3}, 400, "missing field 'sources'"),
    "empty list": ("POST", "/translate", {"sources": []}, 400, "'sources' is empty"),
    "a string, not a list": ("POST", "/translate", {"sources": "a b c"}, 400, "must be an array"),
    "a number in the list": ("POST", "/translate", {"sources": ["a", 3]}, 400, "'sources'[1] must be a string"),
    "beam as a string": ("POST", "/translate", {"sources": ["a"], "beam": "5"}, 400, "'beam' must be an integer"),
    "beam 0": ("POST", "/translate", {"sources": ["a"], "beam": 0}, 400, "'beam' must be between"),
    "sample as a number": ("POST", "/translate", {"sources": ["a"], "sample": 1}, 400, "'sample' must be a boolean"),
    "unknown field": ("POST", "/translate", {"sources": ["a"], "beem": 5}, 400, "unknown field 'beem'"),
    "nbest over beam (the API's own error)": (
        "POST",
        "/translate",
        {"sources": ["a"], "beam": 2, "nbest": 3},
        400,
        "nbest 3 is larger than beam 2",
    ),
    "oversized input": ("POST", "/translate", {"sources": ["a " * 150]}, 413, "the limit is 200"),
    "too many sources": ("POST", "/translate", {"sources": ["a"] * 9}, 413, "the limit is 8 per request"),
    "oversized body": ("POST", "/translate", b'{"sources": ["' + b"a" * 300_000 + b'"]}', 413, "bytes"),
    "targets missing": ("POST", "/score", {"sources": ["a"]}, 400, "missing field 'targets'"),
    "targets of another length": (
        "POST",
        "/score",
        {"sources": ["a", "b"], "targets": ["a"]},
        400,
        "2 sources but 1 targets",
    ),
    "beam as true": ("POST", "/translate", {"sources": ["a"], "beam": True}, 400, "'beam' must be an integer"),
    "beam as 3.0": ("POST", "/translate", {"sources": ["a"], "beam": 3.0}, 400, "'beam' must be an integer"),
    "huge lenpen": ("POST", "/translate", {"sources": ["a"], "beam": 2, "lenpen": 1e308}, 400, "'lenpen' must be"),
    "hugely negative lenpen": ("POST", "/translate", {"sources": ["a"], "lenpen": -1e300}, 400, "'lenpen' must be"),
    "NaN lenpen": ("POST", "/translate", b'{"sources": ["a"], "beam": 2, "nbest": 2, "lenpen": NaN}', 400, "finite"),
    "infinite temperature": (
        "POST",
        "/translate",
        b'{"sources": ["a"], "sample": true, "temperature": 1e309}',
        400,
        "'temperature' must be a finite number",
    ),
    "seed 2**70": ("POST", "/translate", {"sources": ["a"], "sample": True, "seed": 2**70}, 400, "'seed' must be"),
    "a lone surrogate": ("POST", "/translate", b'{"sources": ["a \\ud800 b"]}', 400, "malformed JSON"),
    "too much work": (
        "POST",
        "/translate",
        {"sources": ["a " * 99] * 8, "beam": 64},
        413,
        "51,712 decoder steps (64 row(s) a source, the beam or the samples, x 8 source(s) x up to 101 tokens); "
        "the limit is 2,000",
    ),
    "unknown route": ("GET", "/nope", None, 404, "no route GET /nope"),
    "wrong method": ("GET", "/translate", None, 405, "/translate takes POST, not GET"),
    "wrong method on /health": ("POST", "/health", b"{}", 405, "takes GET"),
    "a language-model route": ("POST", "/sample", {"prime": "a"}, 404, "needs a lm checkpoint"),
}


def send(server: Server, method: str, path: str, body, client=httpx) -> httpx.Response:
    if body is None:
        return client.request(method, server.url + path)
    if isinstance(body, bytes):
        return client.request(method, server.url + path, content=body, headers={"content-type": "application/json"})
    return client.request(method, server.url + path, json=body)


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_requests_get_one_line_json_errors(server, case):
    method, path, body, status, words = BAD[case]
    assert words in assert_json_error(send(server, method, path, body), status)


def test_a_client_that_disconnects_mid_request_does_not_hurt_the_server(server, api):
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"sources": SOURCES, "beam": 3}).encode()
    head = (
        f"POST /translate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    for payload in (head[:20], head + body[:10], head + body, head + body):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(payload)  # half a request line, half a body, or a whole request: then gone
    time.sleep(0.3)
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert httpx.post(server.url + "/translate", json={"sources": SOURCES[:2]}).json() == {
        "translations": api.translate(SOURCES[:2])
    }
    assert "Traceback" not in server.log.read_text()


def test_concurrent_requests_are_batched(server, api):
    before = httpx.get(server.url + "/health").json()
    expected = dict(zip(SOURCES, api.translate(SOURCES, beam=3)))
    barrier = threading.Barrier(16)

    def one(i: int):
        source = SOURCES[i % len(SOURCES)]
        barrier.wait()
        return source, httpx.post(server.url + "/translate", json={"sources": [source], "beam": 3}, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(16)))
    for source, response in answers:
        assert response.status_code == 200 and response.json() == {"translations": [expected[source]]}
    after = httpx.get(server.url + "/health").json()
    assert after["requests_served"] - before["requests_served"] == 16
    assert after["batches_run"] - before["batches_run"] < 16
    assert after["largest_batch"] > 1


def test_the_batcher_splits_by_settings_and_size_times_out_and_blames_the_right_request():
    """The batcher alone, with a stand-in model: what goes into each model call."""
    import asyncio

    from starlette.exceptions import HTTPException

    from textgen.errors import UserError
    from textgen.serve.app import Batcher, Limits

    calls = []

    def translate(sources, settings):
        calls.append((settings["beam"], list(sources)))
        if "bad" in sources:
            raise UserError("a bad source")
        if "slow" in sources:
            time.sleep(0.5)
        return [s.upper() for s in sources]

    async def scenario():
        pool = ThreadPoolExecutor(1)
        batcher = Batcher(translate, pool, Limits(max_batch=4, window_ms=20, timeout_s=0.25))
        batcher.start()
        try:
            out = await asyncio.gather(
                *(batcher.submit({"beam": 2}, [s]) for s in "abcdef"), batcher.submit({"beam": 3}, ["g", "h"])
            )
            assert out == [[s.upper()] for s in "abcdef"] + [["G", "H"]]
            assert calls == [(2, list("abcd")), (2, ["e", "f"]), (3, ["g", "h"])]  # first come, first served
            calls.clear()
            good, bad = await asyncio.gather(
                batcher.submit({"beam": 2}, ["x"]), batcher.submit({"beam": 2}, ["bad"]), return_exceptions=True
            )
            assert good == ["X"] and isinstance(bad, UserError)  # retried one by one: only its sender gets the error
            assert calls == [(2, ["x", "bad"]), (2, ["x"]), (2, ["bad"])]
            with pytest.raises(HTTPException) as late:
                await batcher.submit({"beam": 2}, ["slow"])
            assert late.value.status_code == 503 and "timed out after 0.25 s" in late.value.detail
            assert batcher.stats["requests_served"] == 8 and batcher.stats["batches_run"] == 4
        finally:
            await batcher.stop()
            pool.shutdown(wait=True)

    asyncio.run(scenario())


def test_a_burst_of_200_requests_good_and_bad(server, api):
    """Many threads, mixed good and bad requests: every bad one a 4xx one-line JSON error, every good one the
    API's answer; the server healthy afterwards and its memory flat from one burst to the next."""
    expected = dict(zip(SOURCES, api.translate(SOURCES, beam=3)))
    bad = list(BAD.values())

    def request(i: int, client: httpx.Client):
        if i % 3 == 2:
            method, path, body, status, _ = bad[i % len(bad)]
            assert_json_error(send(server, method, path, body, client), status)
            return "bad"
        sources = [SOURCES[i % len(SOURCES)], SOURCES[(i * 7) % len(SOURCES)]][: 1 + i % 2]
        response = client.post(server.url + "/translate", json={"sources": sources, "beam": 3}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json() == {"translations": [expected[s] for s in sources]}
        return "good"

    def burst() -> list[str]:
        with httpx.Client(limits=httpx.Limits(max_connections=64)) as client, ThreadPoolExecutor(32) as pool:
            return list(pool.map(lambda i: request(i, client), range(200)))

    burst()  # warm-up: allocator pools, thread stacks, batch shapes
    warm = server.rss_mb()
    outcome = burst()
    assert outcome.count("bad") == 66 and outcome.count("good") == 134
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert server.rss_mb() - warm < 50, (warm, server.rss_mb())


def test_a_language_model_server_samples_and_scores(toy_lm, tmp_path):
    import textgen

    lm = textgen.load(toy_lm, "cpu")
    srv = start_server(toy_lm, tmp_path / "lm.log")
    try:
        settings = {"prime": "the ", "length": 40, "temperature": 0.8, "top_k": 5, "seed": 2}
        response = httpx.post(srv.url + "/sample", json=settings)
        assert response.status_code == 200, response.text
        assert response.json() == {"text": lm.sample(**settings)}
        scored = httpx.post(srv.url + "/score", json={"texts": ["the cat sat"]}).json()["scores"]
        assert scored[0]["total"] == pytest.approx(lm.score(["the cat sat"])[0].total, abs=1e-4)
        assert httpx.get(srv.url + "/health").json()["vocab"] == {"tokens": len(lm.vocab)}
        assert "Sample" in httpx.get(srv.url + "/").text
        assert "needs a seq2seq checkpoint" in assert_json_error(
            httpx.post(srv.url + "/translate", json={"sources": ["a"]}), 404
        )
        assert "'length' must be between 0 and 1000" in assert_json_error(
            httpx.post(srv.url + "/sample", json={"length": 10**6}), 413
        )
        assert "missing field 'texts'" in assert_json_error(httpx.post(srv.url + "/score", json={}), 400)
        for body, words in (
            ({"top_p": 2}, "'top_p' must be in (0.0, 1.0], got 2"),
            ({"seed": 2**70}, "'seed' must be between 0 and"),
            ({"temperature": 1e300}, "'temperature' must be between 0.0 and 100.0"),
            ({"length": True}, "'length' must be an integer, got boolean"),
        ):
            assert words in assert_json_error(httpx.post(srv.url + "/sample", json=body), 400)
        nan = httpx.post(
            srv.url + "/sample", content=b'{"temperature": NaN}', headers={"content-type": "application/json"}
        )
        assert "'temperature' must be a finite number" in assert_json_error(nan, 400)
    finally:
        stop(srv)
    assert "Traceback" not in srv.log.read_text()


@pytest.mark.parametrize("trained_mt", ["transformer"], indirect=True)
def test_a_transformer_server_translates_and_scores_as_the_api_does(trained_mt, tmp_path):
    """Concurrent requests decode in one batch (key/value caches of sources of other lengths side by side) and
    give what the API gives each alone."""
    import textgen

    mt = textgen.load(trained_mt, "cpu")
    srv = start_server(trained_mt, tmp_path / "mt.log", "--window-ms", "50")
    try:
        settings = [{"beam": 3}, {"beam": 4, "nbest": 2}, {"beam": 1}, {"sample": True, "temperature": 0.7, "seed": 3}]
        barrier = threading.Barrier(len(SOURCES))

        def one(source: str) -> list:
            barrier.wait()
            answers = [
                httpx.post(srv.url + "/translate", json={"sources": [source], **s}, timeout=30) for s in settings
            ]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            return [a.json()["translations"][0] for a in answers]

        with ThreadPoolExecutor(len(SOURCES)) as pool:
            served = list(pool.map(one, SOURCES))
        for source, (beam, nbest, greedy, sampled) in zip(SOURCES, served):
            assert beam == mt.translate([source], beam=3)[0] and greedy == mt.translate([source], beam=1)[0]
            expected = mt.translate([source], beam=4, nbest=2)[0]
            assert [h["text"] for h in nbest] == [t for t, _ in expected]
            assert [h["score"] for h in nbest] == pytest.approx([s for _, s in expected], abs=1e-4)
            assert sampled == mt.translate([source], sample=True, temperature=0.7, seed=3)[0]
        assert served[0][0] == "d c b a"  # the toy model has learnt to reverse
        assert httpx.get(srv.url + "/health").json()["largest_batch"] > 1
        targets = ["d c b a", "f e", "x"]
        scored = httpx.post(srv.url + "/score", json={"sources": SOURCES[:3], "targets": targets}).json()["scores"]
        assert [s["total"] for s in scored] == pytest.approx(
            [s.total for s in mt.score(SOURCES[:3], targets)], abs=1e-4
        )
    finally:
        stop(srv)
    assert "Traceback" not in srv.log.read_text()


def test_serve_without_the_extra_is_a_one_line_error(cli, monkeypatch, toy_mt):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails, as when it is not installed
    result = cli("serve", toy_mt)
    assert result.code == 2 and result.err.strip().count("\n") == 0
    assert "pip install 'textgen[serve]'" in result.err


def test_serve_on_a_port_in_use_is_a_one_line_error(cli, toy_mt):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli("serve", toy_mt, "--port", str(busy.getsockname()[1]))
    assert result.code == 2 and "cannot listen on 127.0.0.1:" in result.err, result.err


def test_a_bad_request_in_a_concurrent_batch_fails_alone(server, api):
    """12 concurrent requests, one with a lone surrogate: it gets a 400, the 11 others their translations."""
    expected = dict(zip(SOURCES, api.translate(SOURCES, beam=3)))
    before = httpx.get(server.url + "/health").json()
    barrier = threading.Barrier(12)

    def one(i: int) -> httpx.Response:
        barrier.wait()
        if i == 5:
            body = b'{"sources": ["a \\ud800 b"], "beam": 3}'
            return httpx.post(server.url + "/translate", content=body, headers={"content-type": "application/json"})
        return httpx.post(server.url + "/translate", json={"sources": [SOURCES[i % 8]], "beam": 3}, timeout=30)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    assert "malformed JSON" in assert_json_error(answers[5], 400)
    for i, response in enumerate(answers):
        if i != 5:
            assert response.status_code == 200, response.text
            assert response.json() == {"translations": [expected[SOURCES[i % 8]]]}
    after = httpx.get(server.url + "/health").json()
    assert after["requests_served"] - before["requests_served"] == 11
    assert after["batches_run"] - before["batches_run"] < 11  # they were batched together


def test_posts_need_a_json_content_type_and_every_route_this_servers_host(server):
    body = json.dumps({"sources": ["a b"]}).encode()
    for media in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": media} if media else {}
        response = httpx.post(server.url + "/translate", content=body, headers=headers)
        assert "Content-Type: application/json" in assert_json_error(response, 415)
    ok = httpx.post(
        server.url + "/translate", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200, ok.text
    port = server.url.rsplit(":", 1)[1]
    for route, method in (("/health", "GET"), ("/", "GET"), ("/translate", "POST")):
        rebound = httpx.request(
            method, server.url + route, json={"sources": ["a"]}, headers={"host": f"evil.example:{port}"}
        )
        assert "--allow-host evil.example" in assert_json_error(rebound, 403)
    for name in ("localhost", "127.0.0.1", "[::1]"):
        assert httpx.get(server.url + "/health", headers={"host": f"{name}:{port}"}).status_code == 200


def test_allowed_hosts_and_the_connection_limit(toy_mt, tmp_path):
    srv = start_server(toy_mt, tmp_path / "server.log", "--allow-host", "Example.org", "--max-connections", "3")
    try:
        port = srv.url.rsplit(":", 1)[1]
        assert httpx.get(srv.url + "/health", headers={"host": f"example.org:{port}"}).status_code == 200
        assert httpx.get(srv.url + "/health", headers={"host": f"example.org:{int(port) + 1}"}).status_code == 403
        host = srv.url.removeprefix("http://").split(":")[0]
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
        try:
            time.sleep(0.2)
            assert httpx.get(srv.url + "/health").status_code == 503  # uvicorn's limit_concurrency
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        assert httpx.get(srv.url + "/health").status_code == 200
    finally:
        stop(srv)


# -- the app with stand-in models, in-process: what reaches the single worker ----------------------------


class FakeModel:
    """A stand-in Translator or LanguageModel whose calls record their inputs and can be held on a gate."""

    device = "cpu"
    separator = ""

    def __init__(self, kind: str):
        from types import SimpleNamespace

        self.kind, self.seen, self.drawn, self.gate = kind, [], 0, threading.Event()
        self.vocabs = SimpleNamespace(src=[0] * 5, tgt=[0] * 5)
        self.vocab = [0] * 5
        from textgen.config import DecodeConfig

        self.recipe = SimpleNamespace(decode=DecodeConfig(beam=1, max_len_a=1.0, max_len_b=2))

    def encode(self, sources):
        return [s.split() for s in sources]

    def translate(self, sources, **settings):
        self.seen.extend(sources)
        if "hold" in sources:
            self.gate.wait(10)
        return [s.upper() for s in sources]

    def score(self, *texts):
        from textgen.api import Scored

        self.seen.extend(texts[0])
        return [Scored([t], [-1.0]) for t in texts[0]]

    def stream(self, prime, length, *settings):
        for _ in range(length):
            self.drawn += 1
            if prime == "hold":
                self.gate.wait(10)
            time.sleep(0.002)
            yield "x"


@pytest.fixture
def fake_server():
    """fake_server(model, limits) -> base URL: build_app on uvicorn in a thread of this process."""
    import uvicorn

    from textgen.serve.app import allowed_hosts, build_app

    running = []

    def start(model: FakeModel, limits) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = build_app(model, "fake.pt", limits, hosts=allowed_hosts("127.0.0.1", port))
        srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((srv, thread, model))
        while not srv.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    yield start
    for srv, thread, model in running:
        model.gate.set()
        srv.should_exit = True
        thread.join(10)


def post_soon(pool: ThreadPoolExecutor, url: str, body: dict):
    return pool.submit(httpx.post, url, json=body, timeout=30)


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_work_whose_client_has_gone_or_timed_out_never_runs(fake_server):
    from textgen.serve.app import Limits

    model = FakeModel("seq2seq")
    url = fake_server(model, Limits(timeout_s=2.0, window_ms=0))
    host, port = url.removeprefix("http://").split(":")
    with ThreadPoolExecutor(4) as pool:
        held = post_soon(pool, url + "/translate", {"sources": ["hold"]})
        wait_until(lambda: "hold" in model.seen)  # the worker is busy
        body = json.dumps({"sources": ["gone"]}).encode()
        with socket.create_connection((host, int(port))) as sock:
            head = f"POST /translate HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            wait_until(lambda: httpx.get(url + "/health").json()["sentences_waiting"] == 1)
        # the client has gone: its sentence stops counting towards max_queued while the worker is still busy
        wait_until(lambda: httpx.get(url + "/health").json()["sentences_waiting"] == 0)
        model.gate.set()
        assert held.result().json() == {"translations": ["HOLD"]}
        model.gate.clear()
        held = post_soon(pool, url + "/translate", {"sources": ["hold", "again"]})
        wait_until(lambda: "again" in model.seen)
        late = httpx.post(url + "/translate", json={"sources": ["late"]}, timeout=30)
        assert "timed out after 2 s" in assert_json_error(late, 503)
        assert httpx.get(url + "/health").json()["sentences_waiting"] == 0  # the timed-out job left the queue
        assert "timed out after 2 s" in assert_json_error(held.result(), 503)  # it runs on: a batch cannot stop
        model.gate.set()
    assert httpx.post(url + "/translate", json={"sources": ["after"]}).json() == {"translations": ["AFTER"]}
    assert model.seen == ["hold", "hold", "again", "after"]


def test_the_queue_limit_holds_for_every_route(fake_server):
    from textgen.serve.app import Limits

    model = FakeModel("seq2seq")
    url = fake_server(model, Limits(max_queued=2, window_ms=0))
    with ThreadPoolExecutor(4) as pool:
        held = post_soon(pool, url + "/translate", {"sources": ["hold"]})
        wait_until(lambda: "hold" in model.seen)
        queued = post_soon(pool, url + "/translate", {"sources": ["a", "b"]})
        wait_until(lambda: httpx.get(url + "/health").json()["sentences_waiting"] == 2)
        assert "busy" in assert_json_error(httpx.post(url + "/translate", json={"sources": ["c"]}), 503)
        busy = httpx.post(url + "/score", json={"sources": ["d"], "targets": ["e"]})
        assert "busy: 2 sentences are waiting" in assert_json_error(busy, 503)
        model.gate.set()
        assert held.result().status_code == queued.result().status_code == 200
    assert httpx.post(url + "/score", json={"sources": ["d"], "targets": ["e"]}).status_code == 200


def test_sample_obeys_the_queue_limit_and_stops_when_nobody_waits(fake_server):
    from textgen.serve.app import Limits

    model = FakeModel("lm")
    url = fake_server(model, Limits(max_queued=1, timeout_s=1.0, window_ms=0))
    with ThreadPoolExecutor(4) as pool:
        held = post_soon(pool, url + "/sample", {"prime": "hold", "length": 5})
        wait_until(lambda: model.drawn > 0)
        queued = post_soon(pool, url + "/score", {"texts": ["a"]})
        wait_until(lambda: httpx.get(url + "/health").json()["sentences_waiting"] == 1)
        assert "busy" in assert_json_error(httpx.post(url + "/sample", json={"prime": "b"}), 503)
        assert "busy" in assert_json_error(httpx.post(url + "/score", json={"texts": ["c"]}), 503)
        model.gate.set()
        assert held.result().json() == {"text": "holdxxxxx"}
        assert queued.result().status_code == 200
    model.drawn = 0
    late = httpx.post(url + "/sample", json={"prime": "a", "length": 1000}, timeout=30)  # 1000 x 2 ms
    assert "timed out after 1 s" in assert_json_error(late, 503)
    time.sleep(0.3)
    drawn = model.drawn
    time.sleep(0.3)
    assert drawn == model.drawn < 1000  # stopped when its client got the 503


def test_a_job_nothing_can_join_runs_without_waiting_for_the_window():
    """Sampled /translate jobs, /score and /sample never share a batch: the batcher runs them at once."""
    import asyncio

    from textgen.serve.app import Batcher, Limits

    def translate(sources, settings):
        return list(sources)

    async def scenario():
        pool = ThreadPoolExecutor(1)
        batcher = Batcher(translate, pool, Limits(window_ms=2000))
        batcher.start()
        try:
            start = time.perf_counter()
            await batcher.submit({"sample": True, "seed": 1}, ["one"])
            assert time.perf_counter() - start < 1.0  # not one window
            await asyncio.gather(*(batcher.submit({"sample": True, "seed": i}, [str(i)]) for i in range(20)))
            await batcher.call(lambda stop: "alone", 1)
            assert time.perf_counter() - start < 1.0  # not 21 windows
            start = time.perf_counter()
            await batcher.submit({"sample": False}, ["batchable"])  # others could join: it waits the window
            assert time.perf_counter() - start >= 1.9
        finally:
            await batcher.stop()
            pool.shutdown(wait=True)

    asyncio.run(scenario())


def test_translate_decodes_as_the_api_does_with_the_recipes_mbr_and_temperature(fake_server, toy_mt, monkeypatch):
    """A recipe's [decode.mbr] and decode.temperature apply over HTTP as in `textgen decode` and the API."""
    import dataclasses

    import textgen
    import textgen.decode.dispatch as dispatch
    from textgen.serve.app import Limits

    mt = textgen.load(toy_mt, device="cpu")
    decode = mt.recipe.decode
    mbr = dataclasses.replace(decode.mbr, samples=4, seed=3)
    mt.recipe = dataclasses.replace(mt.recipe, decode=dataclasses.replace(decode, mbr=mbr, temperature=0.7))
    mt.gate = threading.Event()  # what the fixture releases at the end
    url = fake_server(mt, Limits(window_ms=0))
    sources = ["a b c d", "e f g", "h a b"]
    seen, decode_sources = [], dispatch.decode_sources

    def spy(model, decode_text, sources, cfg, sample=False, *rest, **kw):
        seen.append((cfg.mbr.samples, cfg.beam, sample, cfg.temperature))
        return decode_sources(model, decode_text, sources, cfg, sample, *rest, **kw)

    monkeypatch.setattr(dispatch, "decode_sources", spy)

    def post(**body):
        response = httpx.post(url + "/translate", json={"sources": sources, **body}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["translations"]

    for body, expected in [({}, (4, decode.beam, False)), ({"beam": 2}, (0, 2, False)), ({"sample": True}, (0,))]:
        over_http = post(**body, **({"seed": 5} if body.get("sample") else {}))
        assert seen[-1][: len(expected)] == expected and seen[-1][-1] == 0.7, (body, seen[-1])
        assert over_http == mt.translate(sources, **body, **({"seed": 5} if body.get("sample") else {}))
        assert seen[-1] == seen[-2]  # the API decoded with the same settings


def test_request_ranges_are_the_decoding_options_ranges():
    """The server's bodies refuse what the CLI and API refuse (decode/settings.OPTIONS), up to its beam cap."""
    from pydantic import ValidationError

    from textgen.decode.settings import check
    from textgen.errors import UserError
    from textgen.serve.schema import MAX_BEAM, SampleBody, TranslateBody

    for field, value in [("lenpen", -0.5), ("lenpen", 10.5), ("temperature", 100.5), ("seed", 2**63)]:
        with pytest.raises(UserError):
            check(**{field: value})
        with pytest.raises(ValidationError, match=field):
            TranslateBody(sources=["a"], **{field: value})
    assert TranslateBody(sources=["a"], lenpen=0.0, temperature=100.0, seed=2**63 - 1, beam=MAX_BEAM).beam == MAX_BEAM
    for field in ("beam", "nbest"):  # the decoders take more; the server does not
        with pytest.raises(ValidationError, match=field):
            TranslateBody(sources=["a"], **{field: MAX_BEAM + 1})
    for field, value in [("top_p", 0.0), ("top_p", 1.5), ("length", -1), ("top_k", 2**31)]:
        with pytest.raises(ValidationError, match=field):
            SampleBody(**{field: value})
