"""The single model worker of `textgen serve`: a queue where concurrent /translate requests with equal
settings become one model call.

The model is not thread-safe, so every call runs on one worker thread; an idle server waits `window_ms`
after the first request for others (or until `max_batch` sentences are there), a busy one takes, as soon
as the worker is free, whatever queued meanwhile. A job nothing can join (a sampled /translate, /score,
/sample) runs at once. Each request gets its own slice of the outputs; a job whose client has gone or
timed out is dropped before it runs. Memory freed by the model is handed back to the system when the
queue is empty (or once a second), so the server's size does not follow the largest requests it has seen.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("textgen.serve")
try:  # glibc's; musl and macOS have none (and nothing to trim)
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


@dataclass(frozen=True)
class Limits:
    max_batch: int = 32  # sentences decoded together
    window_ms: float = 10.0  # how long an idle server gathers requests into a batch
    max_sources: int = 64  # sources (targets, texts) per request
    max_input_chars: int = 1000  # per source, target, text or prime
    max_length: int = 1000  # /sample tokens
    timeout_s: float = 30.0  # reading a request, and waiting for its result
    max_queued: int = 4096  # sentences (texts, samples) waiting for the worker before new requests get 503
    max_work: int = 200_000  # decoder steps one /translate may ask for: rows (beam x sources) x length limit
    max_connections: int = 512  # open connections before new ones get 503 (uvicorn's limit_concurrency)


def error(status: int, message: str) -> HTTPException:
    return HTTPException(status, " ".join(str(message).split()))  # one line, always


@dataclass
class _Job:
    key: tuple | None  # jobs with equal keys share a batch; None: nothing can join this one
    run: Callable[[list[str], threading.Event], Any]  # in the worker: (the batch's sources, stop) -> outputs
    sources: list[str]
    settings: dict | None  # a translation's settings (None: /score or /sample)
    future: asyncio.Future
    arrived: float
    stop: threading.Event = field(default_factory=threading.Event)  # set once nobody waits for the answer


class Batcher:
    """The worker's queue, first come first served: /translate jobs with equal settings share a batch."""

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

    async def submit(self, settings: dict, sources: list[str], gone: Callable[[], Awaitable] | None = None) -> list:
        """The translations of `sources`, decoded beside other jobs with the same settings. `gone` returns
        when the client has disconnected: the job is then dropped."""
        # sampled jobs run alone: each carries its own seed (drawn where the client gives none)
        key = None if settings.get("sample") else tuple(sorted(settings.items()))
        return await self._wait(key, lambda batch, stop: self.translate(batch, settings), sources, settings, gone)

    async def call(self, fn: Callable[[threading.Event], Any], size: int, gone: Callable[[], Awaitable] | None = None):
        """fn(stop) alone in the worker, after what is queued before it, counting `size` sentences towards
        max_queued; `stop` is set once nobody waits for the answer (timed out, client gone)."""
        return await self._wait(None, lambda batch, stop: fn(stop), [""] * size, None, gone)

    async def _wait(self, key, run, sources: list[str], settings: dict | None, gone):
        if self.queued + len(sources) > self.limits.max_queued:
            raise error(503, f"busy: {self.queued} sentences are waiting; retry later")
        loop = asyncio.get_running_loop()
        job = _Job(key, run, sources, settings, loop.create_future(), loop.time())
        self.jobs.append(job)
        self.queued += len(sources)
        self.wake.set()
        watch = loop.create_task(gone()) if gone else None
        try:
            waits = [job.future] if watch is None else [job.future, watch]
            await asyncio.wait(waits, timeout=self.limits.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if job.future.done():
                return job.future.result()
            if watch is not None and watch.done():
                raise ClientDisconnect()
            raise error(503, f"timed out after {self.limits.timeout_s:g} s: the server is busy, retry later")
        finally:
            if watch is not None:
                watch.cancel()
            job.stop.set()
            job.future.cancel()  # no-op when answered; else the worker skips it
            if job in self.jobs:  # not taken: it stops counting towards max_queued now, not when the worker is free
                self.jobs.remove(job)
                self.queued -= len(job.sources)

    def _prune(self) -> None:
        while self.jobs and self.jobs[0].future.done():
            self.queued -= len(self.jobs.popleft().sources)

    def _waiting(self, key: tuple) -> int:
        return sum(len(j.sources) for j in self.jobs if j.key == key and not j.future.done())

    def _take(self, first: _Job) -> list[_Job]:
        batch, rest, size = [], deque(), 0
        for job in self.jobs:
            joins = job is first or (
                first.key is not None and job.key == first.key and size + len(job.sources) <= self.limits.max_batch
            )
            if job.future.done() or joins:
                self.queued -= len(job.sources)
            if joins and not job.future.done():
                batch.append(job)
                size += len(job.sources)
            elif not job.future.done():
                rest.append(job)
        self.jobs = rest
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        free_since = trimmed = loop.time()
        while True:
            self._prune()
            if not self.jobs:
                self.wake.clear()
                await self.wake.wait()
                continue
            first = self.jobs[0]
            # the window runs from the later of the first job's arrival and the worker's last finish: clients
            # answered by the batch just run come straight back, and a few ms turn half batches into full ones
            deadline = max(first.arrived, free_since) + self.limits.window_ms / 1000
            while first.key is not None and self._waiting(first.key) < self.limits.max_batch:
                left = deadline - loop.time()
                if left <= 0 or first.future.done():
                    break
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            if first.future.done():  # it gave up while it waited
                continue
            try:
                await self._execute(self._take(first))
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch
                log.error("batch failed", exc_info=exc)
            self._prune()
            if _malloc_trim is not None and (not self.jobs or loop.time() - trimmed > 1.0):
                # glibc keeps freed blocks in its arenas, and tensors of ever new shapes (sources, lengths,
                # beams) fragment them: RSS grew by hundreds of MB over a few thousand varied requests. Hand
                # them back when idle, or once a second under load (malloc_trim takes a few ms)
                await loop.run_in_executor(self.executor, _malloc_trim, 0)
                trimmed = loop.time()
            free_since = loop.time()

    async def _execute(self, batch: list[_Job]) -> None:
        sources = [s for job in batch for s in job.sources]
        first = batch[0]
        start = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self.executor, first.run, sources, first.stop)
        except Exception as exc:  # noqa: BLE001 - handed to the requests
            if len(batch) > 1:  # whose input was it? each on its own: only its sender gets the error
                for job in batch:
                    if not job.future.done():
                        await self._execute([job])
                return
            if not first.future.done():
                first.future.set_exception(exc)
            return
        if first.settings is None:  # /score, /sample
            if not first.future.done():
                first.future.set_result(outputs)
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
            _settings_text(first.settings),
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
