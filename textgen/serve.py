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
import json
import logging
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from textgen.errors import UserError
from textgen.microbatch import Batcher, Limits, error
from textgen.serve_page import render_page

log = logging.getLogger("textgen.serve")
REQUIRED = object()
MAX_BEAM = 64


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
