"""`textgen serve`: one checkpoint behind a small HTTP JSON API (Starlette + uvicorn: the `serve` extra).

POST /translate and /score (seq2seq), POST /sample and /score (language model), GET /health, and GET /,
a page to try the model in a browser. Every bad request gets a 4xx (503 when busy or timed out) with a
one-line `{"error": "..."}`.

The model is not thread-safe, so every model call runs in one worker thread. Concurrent /translate
requests with the same decode settings are gathered into one batch: an idle server waits `window_ms`
after the first request for others (or until `max_batch` sentences are there); a busy one takes, as
soon as the worker is free, whatever queued meanwhile. Each request gets its own slice of the outputs.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from textgen.errors import UserError

log = logging.getLogger("textgen.serve")
REQUIRED = object()
MAX_BEAM = 64


@dataclass(frozen=True)
class Limits:
    max_batch: int = 32  # sentences decoded together
    window_ms: float = 10.0  # how long an idle server gathers requests into a batch
    max_sources: int = 64  # sources (targets, texts) per request
    max_input_chars: int = 1000  # per source, target, text or prime
    max_length: int = 1000  # /sample tokens
    timeout_s: float = 30.0  # reading a request, and waiting for its result
    max_queued: int = 4096  # sentences waiting for the worker before new requests get 503


def error(status: int, message: str) -> HTTPException:
    return HTTPException(status, " ".join(str(message).split()))  # one line, always


@dataclass
class _Job:
    key: tuple
    settings: dict
    sources: list[str]
    future: asyncio.Future
    arrived: float


class Batcher:
    """Gathers /translate jobs with equal settings into batches, run one at a time by the single worker."""

    def __init__(self, translate: Callable[[list[str], dict], list], executor: ThreadPoolExecutor, limits: Limits):
        self.translate, self.executor, self.limits = translate, executor, limits
        self.jobs: deque[_Job] = deque()
        self.queued = 0  # sentences in self.jobs
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.stats = {"batches_run": 0, "requests_served": 0, "sentences_translated": 0, "largest_batch": 0}

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def submit(self, settings: dict, sources: list[str]) -> list:
        if self.queued + len(sources) > self.limits.max_queued:
            raise error(503, f"busy: {self.queued} sentences are waiting; retry later")
        loop = asyncio.get_running_loop()
        # sampled outputs depend on what else is in the batch (one generator): those never share one
        key = (object(),) if settings.get("sample") else tuple(sorted(settings.items()))
        job = _Job(key, settings, sources, loop.create_future(), loop.time())
        self.jobs.append(job)
        self.queued += len(sources)
        self.wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise error(503, f"timed out after {self.limits.timeout_s:g} s: the server is busy, retry later") from None
        finally:
            job.future.cancel()  # no-op when answered; else the worker skips it

    def _prune(self) -> None:
        while self.jobs and self.jobs[0].future.done():
            self.queued -= len(self.jobs.popleft().sources)

    def _waiting(self, key: tuple) -> int:
        return sum(len(j.sources) for j in self.jobs if j.key == key and not j.future.done())

    def _take(self, key: tuple) -> list[_Job]:
        batch, rest, size = [], deque(), 0
        for job in self.jobs:
            if job.future.done():
                self.queued -= len(job.sources)
            elif job.key == key and (not batch or size + len(job.sources) <= self.limits.max_batch):
                batch.append(job)
                size += len(job.sources)
                self.queued -= len(job.sources)
            else:
                rest.append(job)
        self.jobs = rest
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._prune()
            if not self.jobs:
                self.wake.clear()
                await self.wake.wait()
                continue
            first = self.jobs[0]
            deadline = first.arrived + self.limits.window_ms / 1000
            while self._waiting(first.key) < self.limits.max_batch and (left := deadline - loop.time()) > 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take(first.key)
            if not batch:  # the first one gave up while it waited
                continue
            try:
                await self._execute(batch)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch
                log.error("translate batch failed", exc_info=exc)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    async def _execute(self, batch: list[_Job]) -> None:
        sources = [s for job in batch for s in job.sources]
        start = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.translate, sources, batch[0].settings
            )
        except Exception as exc:  # noqa: BLE001 - handed to the requests
            if isinstance(exc, UserError) and len(batch) > 1:  # whose input was it? each on its own
                for job in batch:
                    await self._execute([job])
                return
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        seconds = time.perf_counter() - start
        stats = self.stats
        stats["batches_run"] += 1
        stats["requests_served"] += len(batch)
        stats["sentences_translated"] += len(sources)
        stats["largest_batch"] = max(stats["largest_batch"], len(sources))
        log.info(
            "translate: batch of %d request(s), %d sentence(s), %s, %.3f s, %d sentence(s) waiting",
            len(batch),
            len(sources),
            _settings_text(batch[0].settings),
            seconds,
            self.queued,
        )
        i = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(outputs[i : i + len(job.sources)])
            i += len(job.sources)


def _settings_text(settings: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items() if v is not None) or "recipe settings"


# -- request parsing ---------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
    ):
        if isinstance(value, kind):
            return name
    return "null"


_CHECKS = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
}


def _field(body: dict, name: str, kind: str, default: Any = REQUIRED) -> Any:
    """body[name] checked against a JSON type; absent or null gives the default (absent and required: 400)."""
    value = body.get(name)
    if value is None:
        if default is REQUIRED:
            raise error(400, f"missing field '{name}'")
        return default
    if not _CHECKS[kind](value):
        raise error(400, f"'{name}' must be {'an' if kind == 'integer' else 'a'} {kind}, got {_json_type(value)}")
    return value


def _ranged(body: dict, name: str, kind: str, default: Any, low: float, high: float, status: int = 400) -> Any:
    value = _field(body, name, kind, default)
    if body.get(name) is not None and not low <= value <= high:  # defaults are the recipe's, never refused
        raise error(status, f"'{name}' must be between {low} and {high}, got {value}")
    return value


def _texts(body: dict, name: str, limits: Limits) -> list[str]:
    value = body.get(name)
    if value is None:
        raise error(400, f"missing field '{name}': give a list of strings")
    if not isinstance(value, list):
        raise error(400, f"'{name}' must be an array of strings, got {_json_type(value)}")
    if not value:
        raise error(400, f"'{name}' is empty: give at least one string")
    if len(value) > limits.max_sources:
        raise error(413, f"'{name}' has {len(value)} items; the limit is {limits.max_sources} per request")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise error(400, f"'{name}'[{i}] must be a string, got {_json_type(item)}")
        _check_chars(item, f"'{name}'[{i}]", limits)
    return value


def _check_chars(text: str, what: str, limits: Limits) -> None:
    if len(text) > limits.max_input_chars:
        raise error(413, f"{what} has {len(text)} characters; the limit is {limits.max_input_chars}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


async def _read_json(request: Request, allowed: tuple[str, ...], limits: Limits) -> dict:
    cap = limits.max_sources * limits.max_input_chars * 8 + 65536  # two lists of UTF-8, escapes, settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise error(413, f"the request body has {declared} bytes; the limit is {cap}")

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise error(413, f"the request body is over the limit of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), limits.timeout_s)
    except asyncio.TimeoutError:
        raise error(408, f"the request body did not arrive within {limits.timeout_s:g} s") from None
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise error(400, "malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise error(400, f"the body must be a JSON object, got {_json_type(body)}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise error(
            400, f"unknown field(s) {', '.join(map(repr, unknown))}: {request.url.path} takes {', '.join(allowed)}"
        )
    return body


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _scored(item) -> dict:
    d = item.to_dict()
    d["total"], d["mean"] = _finite(d["total"]), _finite(d["mean"])
    d["per_token"] = [{**t, "logprob": _finite(t["logprob"])} for t in d["per_token"]]
    return d


# -- the app -----------------------------------------------------------------------------------------------


def vocab_sizes(model) -> dict:
    if model.kind == "lm":
        return {"tokens": len(model.vocab)}
    return {"src": len(model.vocabs.src), "tgt": len(model.vocabs.tgt)}


def build_app(model, path: str, limits: Limits = Limits(), url: str = "") -> Starlette:
    """The Starlette app serving `model` (a textgen.api Translator or LanguageModel) loaded from `path`."""
    from textgen.results import git_commit

    executor = ThreadPoolExecutor(1, thread_name_prefix="textgen-model")
    batcher = Batcher(lambda sources, settings: model.translate(sources, **settings), executor, limits)
    info = {
        "status": "ok",
        "model": path,
        "kind": model.kind,
        "vocab": vocab_sizes(model),
        "device": str(model.device),
        "git_commit": git_commit(),
    }
    started = time.time()

    async def call(what: str, fn: Callable, *args):
        """One model call in the worker thread, after whatever it is running; one log line."""
        start = time.perf_counter()
        future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        try:
            out = await asyncio.wait_for(future, limits.timeout_s)
        except asyncio.TimeoutError:
            raise error(503, f"timed out after {limits.timeout_s:g} s: the server is busy, retry later") from None
        log.info("%s: %.3f s", what, time.perf_counter() - start)
        return out

    def needs(kind: str, route: str) -> None:
        if model.kind != kind:
            other = "POST /sample, POST /score" if model.kind == "lm" else "POST /translate, POST /score"
            raise error(404, f"{route} needs a {kind} checkpoint; this server holds a {model.kind} model ({other})")

    async def translate(request: Request) -> Response:
        needs("seq2seq", "POST /translate")
        body = await _read_json(
            request, ("sources", "beam", "nbest", "lenpen", "sample", "temperature", "seed"), limits
        )
        sources = _texts(body, "sources", limits)
        settings = {
            "beam": _ranged(body, "beam", "integer", model.recipe.decode.beam, 1, MAX_BEAM),
            "nbest": _ranged(body, "nbest", "integer", 1, 1, MAX_BEAM),
            "lenpen": _field(body, "lenpen", "number", None),
            "sample": _field(body, "sample", "boolean", False),
            "temperature": _field(body, "temperature", "number", 1.0),
            "seed": _field(body, "seed", "integer", None),
        }
        if not settings["sample"]:  # unused by search: they must not split batches
            settings["temperature"], settings["seed"] = 1.0, None
        out = await batcher.submit(settings, sources)
        if settings["nbest"] > 1:
            out = [[{"text": t, "score": _finite(s)} for t, s in hyps] for hyps in out]
        return JSONResponse({"translations": out})

    async def sample(request: Request) -> Response:
        needs("lm", "POST /sample")
        body = await _read_json(request, ("prime", "length", "temperature", "top_k", "top_p", "seed"), limits)
        prime = _field(body, "prime", "string", "")
        _check_chars(prime, "'prime'", limits)
        args = (
            prime,
            _ranged(body, "length", "integer", 100, 0, limits.max_length, 413),
            _field(body, "temperature", "number", 1.0),
            _field(body, "top_k", "integer", 0),
            _field(body, "top_p", "number", 1.0),
            _field(body, "seed", "integer", None),
        )
        return JSONResponse({"text": await call(f"sample: {args[1]} tokens", model.sample, *args)})

    async def score(request: Request) -> Response:
        if model.kind == "seq2seq":
            body = await _read_json(request, ("sources", "targets"), limits)
            sources, targets = _texts(body, "sources", limits), _texts(body, "targets", limits)
            scored = await call(f"score: {len(sources)} pair(s)", model.score, sources, targets)
        else:
            body = await _read_json(request, ("texts",), limits)
            texts = _texts(body, "texts", limits)
            scored = await call(f"score: {len(texts)} text(s)", model.score, texts)
        return JSONResponse({"scores": [_scored(s) for s in scored]})

    async def health(request: Request) -> Response:
        return JSONResponse({**info, **batcher.stats, "uptime_s": round(time.time() - started, 1)})

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(info))

    def endpoint(fn):
        async def run(request: Request) -> Response:
            try:
                return await fn(request)
            except UserError as exc:
                raise error(400, str(exc)) from None
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is there to read it

        return run

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}: the routes are GET /, GET /health, " + (
                "POST /translate, POST /score" if model.kind == "seq2seq" else "POST /sample, POST /score"
            )
        elif exc.status_code == 405:
            allowed = ", ".join(
                sorted(
                    m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip() not in ("", "HEAD")
                )
            )
            message = f"{request.url.path} takes {allowed or 'another method'}, not {request.method}"
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}; see the server log"}, 500)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        if url:
            log.info("serving %s (%s) on %s", path, model.kind, url)
        try:
            yield
        finally:
            await batcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/translate", endpoint(translate), methods=["POST"]),
        Route("/sample", endpoint(sample), methods=["POST"]),
        Route("/score", endpoint(score), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, Exception: server_error}
    )
    app.state.batcher = batcher
    return app


def serve(ckpt: Path, host: str, port: int, device: str, limits: Limits) -> None:
    """Load the checkpoint, bind host:port (0: any free port, logged), serve until Ctrl-C."""
    import uvicorn

    from textgen.api import load

    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s textgen.serve: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    model = load(ckpt, device)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections: no 40 ms ACK waits
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach port %d can use the model (no authentication)", host, bound)
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
    app = build_app(model, str(ckpt), limits, url)
    config = uvicorn.Config(app, host=host, port=bound, log_level="info", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


# -- the page ----------------------------------------------------------------------------------------------

_FORMS = {
    "seq2seq": """
<label for="text">Sources, one per line</label>
<textarea id="text" rows="6"></textarea>
<div class="row"><label>beam <input id="beam" type="number" min="1" max="64" placeholder="recipe"></label>
<label>n-best <input id="nbest" type="number" min="1" max="64" value="1"></label>
<button id="go">Translate</button></div>""",
    "lm": """
<label for="text">Prime</label>
<textarea id="text" rows="4"></textarea>
<div class="row"><label>length <input id="length" type="number" min="0" value="200"></label>
<label>temperature <input id="temperature" type="number" min="0" step="0.1" value="0.8"></label>
<label>top-k <input id="top_k" type="number" min="0" value="0"></label>
<label>seed <input id="seed" type="number" placeholder="random"></label>
<button id="go">Sample</button></div>""",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>textgen serve: %(name)s</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:860px;margin:2em auto;padding:0 1em;
color:#1d2430;background:#fafafa}
h1{font-size:1.35em;margin:0 0 .2em}.meta{color:#5a6372;font-size:.9em;margin-bottom:1.2em}
code{background:#eef0f3;padding:.1em .35em;border-radius:4px}
label{display:block;font-weight:600;margin:.6em 0 .3em}.row label{display:inline-block;font-weight:400;margin-right:1em}
textarea{width:100%%;box-sizing:border-box;font:inherit;padding:.5em;border:1px solid #c6ccd5;border-radius:6px}
input{width:6em;font:inherit;padding:.2em .3em}
button{font:inherit;padding:.35em 1.2em;border:0;border-radius:6px;background:#2f6fdd;color:#fff;cursor:pointer}
button:disabled{background:#8aa8dc}
#out{margin-top:1.2em}.item{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.5em .8em;
margin:.4em 0;white-space:pre-wrap}.src{color:#5a6372;font-size:.85em}.err{color:#b3261e}
.score{color:#5a6372;font-size:.85em;margin-right:.6em}
</style></head><body>
<h1>textgen serve</h1>
<div class="meta"><code>%(model)s</code> &middot; %(kind)s &middot; vocabulary %(vocab)s &middot; %(device)s
&middot; git %(commit)s &middot; <a href="/health">/health</a></div>
%(form)s
<div id="out"></div>
<script>
const KIND = "%(kind)s", $ = id => document.getElementById(id), out = $("out");
function show(cls, text, note) {
  const div = document.createElement("div"); div.className = "item " + cls;
  if (note) { const n = document.createElement("div"); n.className = "src"; n.textContent = note; div.append(n); }
  div.append(document.createTextNode(text)); out.append(div);
}
async function post(route, body) {
  const r = await fetch(route, {method: "POST", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}
const num = id => $(id).value === "" ? null : Number($(id).value);
async function run() {
  $("go").disabled = true; out.textContent = "";
  try {
    if (KIND === "seq2seq") {
      const sources = $("text").value.split("\\n").filter(s => s.trim());
      const data = await post("/translate", {sources, beam: num("beam"), nbest: num("nbest")});
      data.translations.forEach((t, i) => {
        if (typeof t === "string") show("", t, sources[i]);
        else show("", t.map(h => (h.score === null ? "-inf" : h.score.toFixed(3)) + "  " + h.text)
                       .join("\\n"), sources[i]);
      });
    } else {
      const data = await post("/sample", {prime: $("text").value, length: num("length"),
        temperature: num("temperature"), top_k: num("top_k"), seed: num("seed")});
      show("", data.text);
    }
  } catch (e) { show("err", e.message); }
  $("go").disabled = false;
}
$("go").onclick = run;
const q = new URLSearchParams(location.search);
if (q.has("text")) { $("text").value = q.get("text"); if (q.get("run") === "1") run(); }
</script>
</body></html>
"""


def render_page(info: dict) -> str:
    """The try-it page: a form for this checkpoint's kind; ?text=...&run=1 fills it in (and runs it)."""
    vocab = " / ".join(f"{v:,}" for v in info["vocab"].values())
    return _PAGE % {
        "name": html.escape(Path(info["model"]).name),
        "model": html.escape(info["model"]),
        "kind": info["kind"],
        "vocab": vocab,
        "device": html.escape(info["device"]),
        "commit": html.escape(info["git_commit"][:12]),
        "form": _FORMS[info["kind"]],
    }
