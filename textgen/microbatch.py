"""Micro-batching for `textgen serve`: concurrent requests with equal settings become one model call.

The model is not thread-safe, so every call runs on one worker thread; an idle server waits `window_ms`
after the first request for others (or until `max_batch` sentences are there), a busy one takes, as soon
as the worker is free, whatever queued meanwhile. Each request gets its own slice of the outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from starlette.exceptions import HTTPException

from textgen.errors import UserError

log = logging.getLogger("textgen.serve")


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
        free_since = loop.time()
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
            free_since = loop.time()

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
