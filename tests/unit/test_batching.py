"""Opportunistic batching: requests queued together share one model call, each row gets the
prediction it gets alone, and a request with bad values fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from gitops_mlops.serving import batching
from gitops_mlops.serving.batching import Batcher, Busy, Columns, Outputs

# Both ways of running the model: in the predict thread, and on the event loop (`inline`).
INLINE = pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])


def iris() -> pd.DataFrame:
    frame: pd.DataFrame = load_iris(as_frame=True).frame
    return frame


class Counted:
    """A fitted model's methods, counting the calls and the rows they were given."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: list[int] = []

    def __call__(self, columns: Columns, outputs: tuple[str, ...]) -> Outputs:
        frame = pd.DataFrame(columns)
        self.calls.append(len(frame))
        return {name: np.asarray(getattr(self.model, name)(frame)) for name in outputs}


def columns(frame: pd.DataFrame) -> Columns:
    return {name: frame[name].to_numpy() for name in frame.columns}


async def gather(batcher: Batcher, requests: Sequence[tuple[pd.DataFrame, tuple[str, ...]]]) -> Any:
    return await asyncio.gather(
        *(batcher.predict(columns(frame), outputs) for frame, outputs in requests),
        return_exceptions=True,
    )


@INLINE
def test_queued_requests_share_one_call_and_get_their_own_rows(inline: bool) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(
        RandomForestClassifier(n_estimators=20, random_state=0).fit(features, data.target)
    )
    both = ("predict", "predict_proba")
    requests = [(features.iloc[i : i + 1 + i % 7].reset_index(drop=True), both) for i in range(20)]
    batcher = Batcher(model, inline=inline)
    results = asyncio.run(gather(batcher, requests))
    assert model.calls == [sum(len(f) for f, _ in requests)] and batcher.calls == 1
    for (frame, _), result in zip(requests, results, strict=True):
        assert result["predict"].tolist() == model.model.predict(frame).tolist()
        np.testing.assert_array_equal(result["predict_proba"], model.model.predict_proba(frame))


@INLINE
def test_different_outputs_or_dtypes_do_not_share_a_call(inline: bool) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))
    as_float32 = features.head(2).astype("float32")
    requests = [
        (features.head(3), ("predict",)),
        (features.tail(2).reset_index(drop=True), ("predict_proba",)),
        (as_float32, ("predict",)),
        (features.iloc[5:9].reset_index(drop=True), ("predict",)),
    ]
    batcher = Batcher(model, inline=inline)
    results = asyncio.run(gather(batcher, requests))
    assert model.calls == [7, 2, 2]  # the two float64 `predict` requests shared the first call
    assert results[2]["predict"].tolist() == model.model.predict(as_float32).tolist()
    assert list(results[1]) == ["predict_proba"]


@INLINE
def test_a_request_the_model_cannot_use_fails_alone(inline: bool) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))
    broken = features.head(2).copy()
    broken.iloc[1, 0] = np.nan  # this model has no imputer: scikit-learn refuses NaN
    requests = [(features.head(3), ("predict",)), (broken, ("predict",))]
    requests.append((features.tail(1).reset_index(drop=True), ("predict",)))
    results = asyncio.run(gather(Batcher(model, inline=inline), requests))
    assert model.calls == [6, 3, 2, 1]  # the shared call failed; each request ran alone
    assert isinstance(results[1], ValueError) and "NaN" in str(results[1])
    assert results[0]["predict"].tolist() == model.model.predict(features.head(3)).tolist()
    assert results[2]["predict"].tolist() == model.model.predict(features.tail(1)).tolist()


@INLINE
def test_a_batch_stops_at_the_row_limit(inline: bool) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))
    requests = [(features.head(40), ("predict",)) for _ in range(5)]
    results = asyncio.run(gather(Batcher(model, max_rows=100, inline=inline), requests))
    assert model.calls == [80, 80, 40]
    assert all(len(r["predict"]) == 40 for r in results)


@INLINE
def test_a_model_bug_reaches_every_request_of_the_call(inline: bool) -> None:
    def broken(columns: Columns, outputs: tuple[str, ...]) -> Outputs:
        raise KeyError("a bug in the model")

    frame = iris().head(2)
    results = asyncio.run(gather(Batcher(broken, inline=inline), [(frame, ("predict",))] * 3))
    assert all(isinstance(r, KeyError) for r in results)


@INLINE
def test_a_lone_request_is_predicted_at_once(inline: bool) -> None:
    """An idle server does not wait for company: the call starts with the first request."""
    data = iris()
    model = Counted(LogisticRegression(max_iter=500).fit(data.drop(columns="target"), data.target))

    async def one_after_another() -> list[Outputs]:
        batcher = Batcher(model, inline=inline)
        frame = data.drop(columns="target").head(1)
        return [await batcher.predict(columns(frame), ("predict",)) for _ in range(3)]

    results = asyncio.run(one_after_another())
    assert model.calls == [1, 1, 1] and len(results) == 3


def test_answered_clients_asking_again_join_the_next_call() -> None:
    """Busy clients re-ask soon after they are answered (here 0.5 to 2 ms later, like clients
    on the network): the next call waits for them (at most half as long as the last
    call, ~7 ms here) instead of alternating between one request and the rest."""
    data = iris()
    features = data.drop(columns="target")
    forest = RandomForestClassifier(n_estimators=100, random_state=0)
    model = Counted(forest.fit(features, data.target))

    async def busy_clients() -> None:
        batcher = Batcher(model)

        async def client(row: int) -> None:
            for _ in range(3):
                await batcher.predict(columns(features.iloc[row : row + 1]), ("predict",))
                await asyncio.sleep(0.0005 * (row + 1))

        await asyncio.gather(*(client(row) for row in range(4)))

    asyncio.run(busy_clients())
    assert model.calls == [4, 4, 4]


@INLINE
@pytest.mark.parametrize("rows", [1, 5])
def test_a_cancelled_request_does_not_stop_the_others(rows: int, inline: bool) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))

    async def scenario() -> list[Any]:
        batcher = Batcher(model, inline=inline)
        gone = asyncio.ensure_future(batcher.predict(columns(features.head(rows)), ("predict",)))
        kept = asyncio.ensure_future(batcher.predict(columns(features.head(2)), ("predict",)))
        await asyncio.sleep(0)
        gone.cancel()
        return [await kept]

    (result,) = asyncio.run(scenario())
    assert result["predict"].tolist() == model.model.predict(features.head(2)).tolist()


@INLINE
def test_a_full_queue_refuses_at_once_and_serves_what_it_holds(
    monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))
    requests = [(features.head(40), ("predict",)) for _ in range(3)]
    results = asyncio.run(gather(Batcher(model, max_queued_rows=100, inline=inline), requests))
    assert isinstance(results[2], Busy) and "2 requests (80 rows)" in str(results[2])
    assert model.calls == [80] and all(len(r["predict"]) == 40 for r in results[:2])
    # A request bigger than the limit is still served when nothing else waits.
    alone = asyncio.run(gather(Batcher(model, max_queued_rows=10, inline=inline), requests[:1]))
    assert len(alone[0]["predict"]) == 40
    # The count of requests is bounded too (1-row requests cost the most per row).
    monkeypatch.setattr(batching, "MAX_QUEUED_REQUESTS", 3)
    ones = [(features.head(1), ("predict",)) for _ in range(5)]
    answered = asyncio.run(gather(Batcher(model, inline=inline), ones))
    assert [isinstance(a, Busy) for a in answered] == [False, False, False, True, True]


@INLINE
def test_each_request_is_finished_on_the_event_loop(inline: bool) -> None:
    """`finish` builds the response and counts it in /metrics, whose rows have one writer:
    the event loop, never the predict thread."""
    data = iris()
    features = data.drop(columns="target")
    model = Counted(LogisticRegression(max_iter=500).fit(features, data.target))
    finished: list[int] = []

    def finish(outcome: batching.Outcome) -> int:
        finished.append(threading.get_ident())
        assert not isinstance(outcome, Exception)
        return len(outcome["predict"])

    async def three() -> list[int]:
        batcher = Batcher(model, inline=inline)
        frames = [features.head(n) for n in (1, 2, 3)]
        return list(
            await asyncio.gather(
                *(batcher.submit(columns(f), ("predict",), finish) for f in frames)
            )
        )

    assert asyncio.run(three()) == [1, 2, 3]
    assert finished == [threading.get_ident()] * 3
