"""`textgen serve`: one checkpoint behind a small HTTP JSON API (Starlette + uvicorn: the `serve` extra).

POST /translate and /score (seq2seq), POST /sample and /score (language model), GET /health, and GET /,
a page to try the model in a browser. Every bad request gets a 4xx (503 when busy or timed out) with a
one-line `{"error": "..."}`; bodies are checked (schema.py) and their work bounded before they
queue, so a bad request fails alone. Only Host headers naming this server are answered and POSTs must
be `application/json`: a web page cannot post to it cross-site, nor read it through DNS rebinding.

The model is not thread-safe, so every model call runs in one worker thread, fed by the queue of
microbatch.py: concurrent /translate requests with the same decode settings share one batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from textgen.errors import UserError
from textgen.serve.microbatch import Batcher, Limits, error
from textgen.serve.page import render_page
from textgen.serve.schema import SampleBody, ScorePairsBody, ScoreTextsBody, TranslateBody, check_sizes, parse

log = logging.getLogger("textgen.serve")
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


# -- requests ----------------------------------------------------------------------------------------------


def allowed_hosts(host: str, port: int, others: list[str] = ()) -> frozenset[str] | None:
    """The Host headers this server answers: its loopback names and bound address with the port, and `others`
    (names; "*": any, None). A page from evil.example whose name was rebound to 127.0.0.1 sends
    Host: evil.example, so it can neither post to the model nor read /health."""
    if "*" in others:
        return None
    names = {*LOOPBACK, f"[{host}]" if ":" in host else host, *others}
    ports = (f":{port}", "") if port == 80 else (f":{port}",)
    return frozenset(name.lower() + suffix for name in names for suffix in ports)


def _check_request(request: Request, hosts: frozenset[str] | None) -> None:
    host = request.headers.get("host", "")
    if hosts is not None and host.lower() not in hosts:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        raise error(
            403,
            f"Host {host!r} is not this server's address ({', '.join(sorted(hosts))}): "
            f"start textgen serve with --allow-host {name or 'NAME'} to answer it",
        )
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise error(415, f"POST a JSON body with Content-Type: application/json, not {media or 'none'!r}")


async def _read_body(request: Request, limits: Limits) -> bytes:
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
        return await asyncio.wait_for(read(), limits.timeout_s)
    except asyncio.TimeoutError:
        raise error(408, f"the request body did not arrive within {limits.timeout_s:g} s") from None


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed its connection (called after its body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _decoder_steps(model, sources: list[str], rows: int, limits: Limits) -> None:
    """Bound the work of one /translate: rows a source (the beam; one when sampling; MBR's candidates) x each
    source's output-length limit x the models stepped (an ensemble's members). Encoding the sources here also
    fails a source the vocabulary refuses alone, before any batch."""
    import torch

    from textgen.decode.search import max_lengths

    cfg = model.recipe.decode
    lengths = torch.tensor([len(ids) for ids in model.encode(sources)])
    limit = max_lengths(lengths, cfg.max_len_a, cfg.max_len_b)
    models = len(getattr(getattr(model, "model", None), "members", [None]))  # an ensemble steps each member
    steps = rows * int(limit.sum()) * models
    if steps > limits.max_work:
        ensemble = f" x {models} models" if models > 1 else ""
        raise error(
            413,
            f"this request may take {steps:,} decoder steps ({rows} row(s) a source, the beam or the samples, "
            f"x {len(sources)} source(s) x up to "
            f"{int(limit.max())} tokens{ensemble}); the limit is {limits.max_work:,}: send fewer or shorter "
            "sources, or a smaller beam",
        )


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


def build_app(
    model, path: str, limits: Limits = Limits(), url: str = "", hosts: frozenset[str] | None = None
) -> Starlette:
    """The Starlette app serving `model` (a textgen.api Translator or LanguageModel) loaded from `path`;
    `hosts`: the Host headers it answers (None: any; see allowed_hosts)."""
    h = _Handlers(model, path, limits, url, hosts)
    routes = [
        Route("/", h.endpoint(h.page), methods=["GET"]),
        Route("/health", h.endpoint(h.health), methods=["GET"]),
        Route("/translate", h.endpoint(h.translate), methods=["POST"]),
        Route("/sample", h.endpoint(h.sample), methods=["POST"]),
        Route("/score", h.endpoint(h.score), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes, lifespan=h.lifespan, exception_handlers={HTTPException: h.http_error, Exception: h.server_error}
    )
    app.state.batcher = h.batcher
    return app


class _Handlers:
    """The routes over one model: its worker thread, the batcher that feeds it, and what /health reports."""

    def __init__(self, model, path: str, limits: Limits, url: str, hosts: frozenset[str] | None):
        from textgen.results import git_commit

        self.model, self.path, self.limits, self.url, self.hosts = model, path, limits, url, hosts
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="textgen-model")
        self.batcher = Batcher(lambda sources, settings: model.translate(sources, **settings), self.executor, limits)
        self.info = {
            "status": "ok",
            "model": path,
            "kind": model.kind,
            "vocab": vocab_sizes(model),
            "device": str(model.device),
            "git_commit": git_commit(),
        }
        self.started = time.time()

    async def call(self, request: Request, what: str, fn, size: int):
        """fn(stop) alone in the worker thread, after what is queued; one log line."""
        start = time.perf_counter()
        out = await self.batcher.call(fn, size, lambda: _disconnected(request))
        log.info("%s: %.3f s", what, time.perf_counter() - start)
        return out

    def needs(self, kind: str, route: str) -> None:
        held = self.model.kind
        if held != kind:
            other = "POST /sample, POST /score" if held == "lm" else "POST /translate, POST /score"
            raise error(404, f"{route} needs a {kind} checkpoint; this server holds a {held} model ({other})")

    async def translate(self, request: Request) -> Response:
        self.needs("seq2seq", "POST /translate")
        body = parse(TranslateBody, await _read_body(request, self.limits), "/translate")
        check_sizes(body, self.limits)
        settings = body.model_dump(exclude={"sources"})
        recipe = self.model.recipe.decode
        mbr = recipe.mbr.samples > 0 and settings["beam"] is None and not settings["sample"]
        if settings["beam"] is None and not mbr:  # the recipe's, so that requests with and without it share batches
            settings["beam"] = recipe.beam
        if settings["temperature"] is None:
            settings["temperature"] = recipe.temperature
        if not settings["sample"]:  # unused by search and MBR (which uses the recipe's): they must not split batches
            settings["temperature"], settings["seed"] = recipe.temperature, None
        # MBR (the recipe's, as in `textgen decode`) decodes mbr.samples sampled and mbr.beam searched rows a source
        rows = recipe.mbr.samples + recipe.mbr.beam if mbr else 1 if settings["sample"] else settings["beam"]
        _decoder_steps(self.model, body.sources, rows, self.limits)
        out = await self.batcher.submit(settings, body.sources, lambda: _disconnected(request))
        if settings["nbest"] > 1:
            out = [[{"text": t, "score": _finite(s)} for t, s in hyps] for hyps in out]
        return JSONResponse({"translations": out})

    async def sample(self, request: Request) -> Response:
        self.needs("lm", "POST /sample")
        body = parse(SampleBody, await _read_body(request, self.limits), "/sample")
        check_sizes(body, self.limits)

        model = self.model

        def draw(stop: threading.Event) -> str | None:
            pieces = []
            for piece in model.stream(body.prime, body.length, body.temperature, body.top_k, body.top_p, body.seed):
                if stop.is_set():  # nobody waits for it any more: free the worker
                    return None
                pieces.append(piece)
            return body.prime + (model.separator if body.prime else "") + "".join(pieces)

        return JSONResponse({"text": await self.call(request, f"sample: {body.length} tokens", draw, 1)})

    async def score(self, request: Request) -> Response:
        raw = await _read_body(request, self.limits)
        if self.model.kind == "seq2seq":
            pairs = parse(ScorePairsBody, raw, "/score")
            check_sizes(pairs, self.limits)
            what, size = f"score: {len(pairs.sources)} pair(s)", len(pairs.sources)
            scored = await self.call(request, what, lambda stop: self.model.score(pairs.sources, pairs.targets), size)
        else:
            texts = parse(ScoreTextsBody, raw, "/score")
            check_sizes(texts, self.limits)
            what, size = f"score: {len(texts.texts)} text(s)", len(texts.texts)
            scored = await self.call(request, what, lambda stop: self.model.score(texts.texts), size)
        return JSONResponse({"scores": [_scored(s) for s in scored]})

    async def health(self, request: Request) -> Response:
        waiting = {"sentences_waiting": self.batcher.queued, "uptime_s": round(time.time() - self.started, 1)}
        return JSONResponse({**self.info, **self.batcher.stats, **waiting})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(render_page(self.info))

    def endpoint(self, fn):
        async def run(request: Request) -> Response:
            try:
                _check_request(request, self.hosts)
                return await fn(request)
            except UserError as exc:
                raise error(400, str(exc)) from None
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is there to read it

        return run

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}: the routes are GET /, GET /health, " + (
                "POST /translate, POST /score" if self.model.kind == "seq2seq" else "POST /sample, POST /score"
            )
        elif exc.status_code == 405:
            allowed = ", ".join(
                sorted(
                    m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip() not in ("", "HEAD")
                )
            )
            message = f"{request.url.path} takes {allowed or 'another method'}, not {request.method}"
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}; see the server log"}, 500)

    @asynccontextmanager
    async def lifespan(self, app):
        self.batcher.start()
        if self.url:
            log.info("serving %s (%s) on %s", self.path, self.model.kind, self.url)
        try:
            yield
        finally:
            await self.batcher.stop()
            self.executor.shutdown(wait=False, cancel_futures=True)


def serve(
    ckpt: Path | list[Path], host: str, port: int, device: str, limits: Limits, allow_hosts: list[str] = ()
) -> None:
    """Load the checkpoint (several: their ensemble), bind host:port (0: any free port, logged), serve until
    Ctrl-C; `allow_hosts`: Host names answered besides the loopback names and `host` ("*": any)."""
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
    hosts = allowed_hosts(host, bound, allow_hosts)
    if hosts is not None and host in ("0.0.0.0", "::"):
        log.warning("requests must name this server as %s: add --allow-host NAME for its network names", host)
    app = build_app(model, str(model.path), limits, url, hosts)
    config = uvicorn.Config(
        app,
        host=host,
        port=bound,
        log_level="info",
        access_log=False,
        lifespan="on",
        limit_concurrency=limits.max_connections,
    )
    uvicorn.Server(config).run(sockets=[sock])
