"""Opportunistic batching: requests that arrive while the model is busy share its next call.

A scikit-learn predict has a fixed cost per call (input validation, a ColumnTransformer over
a DataFrame, one Python-level call per tree of a forest) that dwarfs its cost per row: the
iris example's forest takes ~6.7 ms for 1 row and for 100. So the model runs in a worker
thread, the event loop keeps reading and parsing requests meanwhile, and the requests that
queued up during one call are predicted together by the next. An idle server predicts a
lone request at once. Under load, when the last call served k requests and fewer are queued,
the next call waits for company, at most half as long as the last call took: the clients
just answered usually send their next requests within that time, and without the wait the
calls alternate between a few requests and many (measured: 4.7 requests per call on average
with 8 busy clients, 8 with the wait). The wait is bounded by the model's own cost, so it
never adds more than half a call to anyone's latency.

Only requests whose columns have the same dtypes and that ask for the same outputs share a
call, so each row gets the prediction it would get alone (scikit-learn's estimator
checks require predictions to be invariant to the rest of the batch:
`check_methods_subset_invariance`). When a shared call fails, each request is retried alone,
so only the request with the bad values gets the error.

A request costs the event loop one future, settled with what its `finish` makes of the
model's answer (the response), and no task or coroutine of its own: a model that runs on
the loop (`inline`) answers in microseconds, and each task is one more trip through the
loop per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

Columns = dict[str, np.ndarray]  # feature name -> values, every request in the same order
Outputs = dict[str, np.ndarray]
Predict = Callable[[Columns, tuple[str, ...]], Outputs]
Outcome = Outputs | Exception  # a request's predictions, or why the model gave none
T = TypeVar("T")

MAX_BATCH_ROWS = 1024  # bounds the latency one batch adds for the requests queued behind it
LINGER = 0.5  # the longest wait for company, as a fraction of the last call's duration
# Requests and rows that may wait for the model. Past either, an overloaded server answers
# 503 at once instead of letting every queued request time out. For the iris forest that is
# about a second of queue for 1-row requests (1,024 of them) and 0.25 s for 100-row ones.
MAX_QUEUED_REQUESTS = 1024
MAX_QUEUED_ROWS = 16 * MAX_BATCH_ROWS


class Busy(Exception):
    """The queue is full: the client should retry later."""


@dataclass
class _Job:
    columns: Columns
    outputs: tuple[str, ...]
    done: asyncio.Future[Any]
    finish: Callable[[Outcome], Any]  # the outcome -> what `done` holds

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.outputs, *(values.dtype for values in self.columns.values()))


class Batcher:
    def __init__(
        self,
        predict: Predict,
        max_rows: int = MAX_BATCH_ROWS,
        max_queued_rows: int = MAX_QUEUED_ROWS,
        inline: bool = False,
        on_call: Callable[[], None] | None = None,
    ) -> None:
        self._predict = predict
        # Inline: the model runs on the event loop, for models whose calls cost less than
        # handing them to a thread. The requests parsed in one turn of the loop share a call,
        # made in its next turn; there is no waiting for company, since nothing arrives
        # during a call.
        self._inline = inline
        self._on_call = on_call
        self._max_rows = max_rows
        self._max_queued_rows = max_queued_rows
        self._queue: list[_Job] = []
        self._queued_rows = 0
        self._drainer: asyncio.Task[None] | None = None
        self._flushing = False  # inline: a call is scheduled for the loop's next turn
        self._arrived = asyncio.Event()
        self._last = (1, 0.0)  # requests served by the last call, and its seconds
        # One thread: scikit-learn calls are not guaranteed thread-safe, and a second
        # concurrent call would only compete for the same GIL.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.calls = 0  # model calls made, for /metrics: requests / calls = mean batch size

    async def predict(self, columns: Columns, outputs: Sequence[str]) -> Outputs:
        """The model's outputs for these columns (raising what the model raised)."""
        predicted: Outputs = await self.submit(columns, outputs, _outputs)
        return predicted

    def submit(
        self, columns: Columns, outputs: Sequence[str], finish: Callable[[Outcome], T]
    ) -> asyncio.Future[T]:
        """A future of `finish(outcome)`, run on the event loop once the model has answered
        (an exception it raises is the future's). Raises Busy when the queue is full."""
        loop = asyncio.get_running_loop()
        job = _Job(columns, tuple(outputs), loop.create_future(), finish)
        if self._queue and (
            len(self._queue) >= MAX_QUEUED_REQUESTS
            or self._queued_rows + job.rows > self._max_queued_rows
        ):
            raise Busy(
                f"{len(self._queue)} requests ({self._queued_rows} rows) are waiting for the "
                "model; retry shortly"
            )
        self._queue.append(job)
        self._queued_rows += job.rows
        if self._inline:
            if not self._flushing:
                self._flushing = True
                loop.call_soon(self._flush)
        else:
            self._arrived.set()
            if self._drainer is None:
                self._drainer = loop.create_task(self._drain())
        return job.done

    def _flush(self) -> None:
        """Inline: predict everything queued, on the loop."""
        self._flushing = False
        while self._queue:
            batch = self._take()
            outcomes, calls = self._outcomes(batch)
            self._count(calls)
            _settle(batch, outcomes)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wait_for_company()
                if not self._queue:
                    return
                batch = self._take()
                started = time.perf_counter()
                outcomes, calls = await loop.run_in_executor(self._executor, self._outcomes, batch)
                self._last = (len(batch), time.perf_counter() - started)
                self._count(calls)
                _settle(batch, outcomes)
        finally:
            self._drainer = None
            self._last = (1, 0.0)  # idle: the next request is predicted at once

    async def _wait_for_company(self) -> None:
        expected, seconds = self._last
        deadline = time.perf_counter() + LINGER * seconds
        while len(self._queue) < expected:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Job]:
        """The oldest request and every queued request that can share its call."""
        first = self._queue[0]
        batch, rest, rows = [first], [], first.rows
        for job in self._queue[1:]:
            if job.key == first.key and rows + job.rows <= self._max_rows:
                batch.append(job)
                rows += job.rows
            else:
                rest.append(job)
        self._queue = rest
        self._queued_rows -= rows
        return batch

    def _outcomes(self, batch: list[_Job]) -> tuple[list[Outcome], int]:
        """Each request's outcome, and the model calls it took. Touches no future: in the
        predict thread it runs beside the event loop, which settles them."""
        if len(batch) > 1:
            columns = {
                name: np.concatenate([job.columns[name] for job in batch])
                for name in batch[0].columns
            }
            try:
                return _split(batch, self._predict(columns, batch[0].outputs)), 1
            except (ValueError, TypeError):
                pass  # values some request's model cannot use: find which, below
            except Exception as err:  # a model bug: every request hears of it
                return [err] * len(batch), 1
        outcomes: list[Outcome] = []
        for job in batch:
            try:
                outcomes.append(self._predict(job.columns, job.outputs))
            except Exception as err:  # the app turns it into the response
                outcomes.append(err)
        return outcomes, len(batch) + (len(batch) > 1)

    def _count(self, calls: int) -> None:
        self.calls += calls
        if self._on_call is not None:
            for _ in range(calls):
                self._on_call()


def _outputs(outcome: Outcome) -> Outputs:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _split(batch: list[_Job], result: Outputs) -> list[Outcome]:
    outcomes: list[Outcome] = []
    start = 0
    for job in batch:
        end = start + job.rows
        outcomes.append({name: values[start:end] for name, values in result.items()})
        start = end
    return outcomes


def _settle(batch: list[_Job], outcomes: list[Outcome]) -> None:
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.done.done():  # the request was cancelled (client gone): nobody is waiting
            continue
        try:
            job.done.set_result(job.finish(outcome))
        except Exception as err:  # raised by `finish`, or the model's error passed on
            job.done.set_exception(err)
