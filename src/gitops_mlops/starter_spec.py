"""The starter spec `mlops init` writes: a commented `mlops.yaml` for a data file or a
built-in dataset, that validates as written.

From the data it takes the columns (the header or footer, through `data_columns`, the same
reader as `mlops validate`) and the target's values (that column alone, at most
`SAMPLE_ROWS` rows), and guesses the task from those values, saying why. The first gate
threshold is the trivial baseline the model must beat: the share of the most common class
(what always guessing it scores), or an R² of 0 (what always predicting the mean scores).

`plan_*` check and read; `render` is pure text; `write` creates the file without ever
replacing one (an existing file or a symlink is refused, a crash leaves no half file).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gitops_mlops import builtin_datasets, data_columns, data_url
from gitops_mlops.errors import UsageError
from gitops_mlops.spec import semantics

if TYPE_CHECKING:
    import pandas as pd

Task = Literal["classification", "regression"]
SAMPLE_ROWS = 100_000  # of the target column, to guess the task: bounded whatever the file
MAX_CLASSES = 20  # whole-number targets with at most this many values are taken as classes
_NAME_LIMIT = 63  # metadata.name's maxLength
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ()/.-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


class InitRefused(UsageError):
    """`mlops init` will not write: the message says why and what to do (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"mlops init: error: {message}")  # as argparse says its own


@dataclass(frozen=True)
class TaskGuess:
    task: Task
    reason: str  # said on stdout and written in the spec
    classes: int  # distinct target values (0 for regression)
    majority: float | None  # share of the most common class (classification)


@dataclass(frozen=True)
class Starter:
    """Everything the starter spec says."""

    name: str
    source: str  # for the header comment: `data/train.csv`, `builtin iris`
    builtin: str | None
    path: str | None  # relative to the spec's folder, with forward slashes
    target: str
    columns: data_columns.DataColumns
    guess: TaskGuess


# --- checks and reading -------------------------------------------------------------------
def plan_builtin(name: str) -> Starter:
    entry = builtin_datasets.BUILTINS.get(name)
    if entry is None:
        known = ", ".join(builtin_datasets.BUILTINS)
        raise InitRefused(f"--builtin {name!r} is not a built-in dataset; one of: {known}")
    counts = _builtin_target(entry).value_counts(dropna=True)
    guess = _builtin_guess(entry, counts)
    suffix = "classifier" if guess.task == "classification" else "regressor"
    return Starter(
        _model_name(name, suffix),
        f"builtin {name}",
        name,
        None,
        builtin_datasets.TARGET,
        data_columns.of_builtin(name),
        guess,
    )


def plan_file(data: Path, target: str, output: Path) -> Starter:
    """The starter for a data file; InitRefused when the file or the target will not do."""
    relative = _data_location(data, output)
    kind = data_columns.data_format(relative, None)
    try:
        read = data_columns.read(relative, output.parent, None, dtypes=True)
    except data_columns.ColumnsError as err:
        raise InitRefused(f"--data {data}: {err}") from None
    if target not in read.names:
        raise InitRefused(_no_such_column(data, kind, target, read.names))
    guess = guess_task(_file_target(output.parent / relative, kind, target, data), target)
    suffix = "classifier" if guess.task == "classification" else "regressor"
    stem = Path(relative).stem
    return Starter(_model_name(stem, suffix), relative, None, relative, target, read, guess)


def _data_location(data: Path, output: Path) -> str:
    """The data's path relative to the spec's folder, inside the spec's repository."""
    text = str(data)
    if data_url.is_url(text):
        raise InitRefused(
            f"--data {text}: give a local file; for data in object storage, write "
            "data.train.path in the spec yourself (mlops validate checks it)"
        )
    if data.is_symlink():
        raise InitRefused(f"--data {data} is a symbolic link; give the file it points to")
    if not data.is_file():
        what = "a folder" if data.is_dir() else "not there"
        raise InitRefused(f"--data {data} is {what}; expected a CSV or Parquet file")
    spec_dir = output.parent.absolute()
    root = semantics.repository_root(spec_dir).resolve()
    found = data.absolute().resolve()
    try:
        found.relative_to(root)
    except ValueError:
        raise InitRefused(
            f"--data {data} is outside the repository ({root}); a spec reads data only "
            "inside its repository: copy the file there"
        ) from None
    return Path(os.path.relpath(found, spec_dir.resolve())).as_posix()


def _no_such_column(data: Path, kind: str, target: str, names: Sequence[str]) -> str:
    import difflib

    where = f"{data}:1:1" if kind == "csv" else f"{data}"  # a CSV's header is its first line
    close = difflib.get_close_matches(target, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    shown = ", ".join(repr(n) for n in names[:30])
    more = f", … ({len(names)} in all)" if len(names) > 30 else ""
    return (
        f"{where}: --target {target!r} is not a column of {data}{hint} Its columns: {shown}{more}"
    )


def _builtin_target(entry: builtin_datasets.BuiltinDataset) -> pd.Series:
    from sklearn import datasets

    frame = getattr(datasets, entry.loader)(as_frame=True).frame
    return frame[builtin_datasets.TARGET]


def _file_target(path: Path, kind: str, target: str, shown: Path) -> pd.Series:
    """The target column's first `SAMPLE_ROWS` values."""
    import pandas as pd

    try:
        if kind == "parquet":  # one column only; columnar storage reads no other
            values = pd.read_parquet(path, columns=[target])[target].head(SAMPLE_ROWS)
        else:
            values = pd.read_csv(path, usecols=[target], nrows=SAMPLE_ROWS)[target]
    except (ValueError, OSError, pd.errors.ParserError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InitRefused(f"--data {shown}: cannot read column {target!r}: {message}") from None
    if values.dropna().empty:
        raise InitRefused(f"--data {shown}: column {target!r} holds no values to learn from")
    return values


# --- the guess ----------------------------------------------------------------------------
def guess_task(values: pd.Series, target: str) -> TaskGuess:
    """Classification or regression from the target's values, with the reason in words."""
    import pandas as pd

    present = values.dropna()
    counts = present.value_counts()
    distinct = len(counts)
    sample = f"in the first {len(values)} rows" if len(values) == SAMPLE_ROWS else ""
    listed = _some([str(v) for v in counts.index])
    if distinct < 2:
        only = listed or "nothing"
        raise InitRefused(f"target {target!r} holds one value only ({only}): nothing to predict")
    dtype = present.dtype
    if pd.api.types.is_bool_dtype(dtype):
        why = f"target {target!r} is true/false"
        return _classes(why, counts)
    if not pd.api.types.is_numeric_dtype(dtype):
        why = f"target {target!r} holds text: {distinct} classes ({listed}){_in(sample)}"
        return _classes(why, counts)
    whole = bool((present == present.round()).all())
    if whole and distinct <= MAX_CLASSES:
        why = (
            f"target {target!r} holds {distinct} distinct whole numbers ({listed}){_in(sample)}"
            f", taken as classes (at most {MAX_CLASSES}); for a count to predict, change "
            "task to regression"
        )
        return _classes(why, counts)
    kind = "whole numbers" if whole else "numbers"
    why = (
        f"target {target!r} holds {kind} with {distinct} distinct values{_in(sample)} "
        f"(from {_number(float(present.min()))} to {_number(float(present.max()))})"
    )
    return TaskGuess("regression", why, 0, None)


def _builtin_guess(entry: builtin_datasets.BuiltinDataset, counts: pd.Series) -> TaskGuess:
    if entry.task == "regression":
        why = f"the built-in dataset {entry.name!r} is a regression dataset (a numeric target)"
        return TaskGuess("regression", why, 0, None)
    why = f"the built-in dataset {entry.name!r} is a classification dataset"
    why += f" ({len(entry.classes)} classes)"
    return _classes(why, counts)


def _classes(reason: str, counts: pd.Series) -> TaskGuess:
    majority = float(counts.iloc[0]) / float(counts.sum())
    return TaskGuess("classification", reason, len(counts), majority)


def _in(sample: str) -> str:
    return f" {sample}" if sample else ""


def _some(values: list[str], limit: int = 5) -> str:
    return ", ".join(values[:limit]) + (", …" if len(values) > limit else "")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _model_name(stem: str, suffix: str) -> str:
    """A valid metadata.name: lower-case letters, digits and dashes."""
    base = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "model"
    base = base[: _NAME_LIMIT - len(suffix) - 1].strip("-") or "model"
    return f"{base}-{suffix}"


# --- the text -----------------------------------------------------------------------------
def metrics_for(guess: TaskGuess) -> tuple[str, ...]:
    if guess.task == "regression":
        return ("r2", "rmse", "mae")
    if guess.classes == 2:
        return ("accuracy", "f1", "roc_auc")  # f1 and roc_auc of the greater label
    return ("accuracy", "f1_macro", "roc_auc_ovr")


def first_threshold(guess: TaskGuess) -> tuple[str, float, str]:
    """(metric, min, why): the trivial baseline, rounded up to two decimals."""
    if guess.majority is None:
        return "r2", 0.0, "always predicting the mean scores 0"
    floor = math.ceil(guess.majority * 100 - 1e-9) / 100
    share = f"{guess.majority:.1%}"
    return "accuracy", floor, f"always guessing the most common class scores {share}"


def render(starter: Starter, command: str) -> str:
    """The spec's text: valid YAML, every section commented."""
    guess = starter.guess
    classify = guess.task == "classification"
    estimator = (
        "sklearn.ensemble.RandomForestClassifier"
        if classify
        else "sklearn.ensemble.RandomForestRegressor"
    )
    metric, floor, why = first_threshold(guess)
    lines = [
        f"# Written by `{command}`: a starting point. Edit it, then",
        "# `mlops validate` and `mlops run` it. `mlops schema` has every key; `mlops metrics`",
        "# every metric.",
        "apiVersion: mlops/v1",
        "kind: ModelPipeline",
        "metadata:",
        f"  name: {starter.name}",
        "  # What the model is for and for whom: the model card's intended use.",
        f"  description: {_scalar(_description(starter))}",
        "  # owners: ['@your-org/your-team']",
        "  # limitations: Where the model should not be trusted (the model card says it).",
        f"# Guessed: {_comment(guess.reason)}.",
        f"task: {guess.task}",
        "data:",
        "  train:",
        *_data_lines(starter),
        "  # No test file: this share of the rows is held out"
        + (" (stratified: each class keeps its share)." if classify else "."),
        "  # Or give data.test: {path: ...}, a file with the same columns.",
        f"  split: {{test_size: 0.2, seed: 42, stratify: {'true' if classify else 'false'}}}",
        "model:",
        "  # A robust default that needs no tuning; preprocess: auto imputes missing values,",
        "  # scales numbers and one-hot encodes text columns.",
        f"  estimator: {estimator}",
        "  params: {n_estimators: 200, random_state: 0}",
        "  preprocess: auto",
        "evaluation:",
        f"  metrics: [{', '.join(metrics_for(guess))}]",
        "  # Every metric gets an interval at this level (bootstrap or Wilson).",
        "  confidence: {level: 0.95, resamples: 1000, seed: 0}",
        *_slice_example(starter),
        "gate:",
        "  thresholds:",
        f"    # The trivial baseline: {why};",
        "    # raise it to what the model must reach.",
        f"    - {{metric: {metric}, min: {floor:g}}}",
        "    # With a champion (gate.champion and a promotion section), e.g.:",
        f"    # - {{metric: {metric}, max_regression: 0.02}}",
        "# container: and promotion: build the serving image and open the pull request that",
        "# releases it: see the README.",
        "",
    ]
    return "\n".join(lines)


def _description(starter: Starter) -> str:
    what = starter.source if starter.builtin is None else f"the built-in {starter.builtin} data"
    verb = "Classifies" if starter.guess.task == "classification" else "Predicts"
    return f"{verb} {starter.target} from {what}. Say what it is for and for whom."


def _data_lines(starter: Starter) -> list[str]:
    columns = starter.columns.columns
    if starter.builtin is not None:
        lines = [f"    builtin: {starter.builtin}"]
        lines.append(f"    # target: {builtin_datasets.TARGET}; features: every other column:")
        lines += [f"    #   {c.name} ({c.dtype})" for c in columns if c.name != starter.target]
        return lines
    assert starter.path is not None
    target = next(c for c in columns if c.name == starter.target)
    lines = [
        f"    path: {_scalar(starter.path)}",
        f"    target: {_scalar(starter.target)}  # {target.dtype}",
        "    # The inputs, listed so a new column is not used unnoticed. Remove identifiers and",
        "    # anything known only after the fact. Dtypes from "
        + _comment(starter.columns.dtypes_from or "the file")
        + ".",
        "    features:",
    ]
    for column in columns:
        if column.name == starter.target:
            continue
        note = f"{column.dtype}"
        if column.name.startswith("Unnamed: "):
            note += "; no name in the header: a saved row index? then remove it"
        lines.append(f"      - {_scalar(column.name)}  # {_comment(note)}")
    return lines


def _slice_example(starter: Starter) -> list[str]:
    numeric = [
        c.name
        for c in starter.columns.columns
        if c.name != starter.target and (c.dtype or "").startswith(("float", "int"))
    ]
    if not numeric:
        return []
    column = json.dumps(numeric[0], ensure_ascii=False)
    return [
        "  # Metrics on a subset of the rows too, e.g.:",
        "  # slices:",
        f"  #   - {{name: some-rows, where: {{column: {_comment(column)}, op: '>', value: 0}}}}",
    ]


def _scalar(text: str) -> str:
    """A YAML scalar for `text`: plain when that reads back the same, else double-quoted."""
    if _PLAIN.match(text) and text.lower() not in _RESERVED and not text.endswith(" "):
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML 1.2 scalar


def _comment(text: str) -> str:
    """Text inside a comment: one line."""
    return " ".join(text.split())


def write(output: Path, text: str) -> None:
    """Create `output` with `text`, all or nothing, never replacing a file or a link (the
    command line checked `output` as `arguments.new_file`; this holds if one appeared since)."""
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            os.link(tmp, output)  # fails if anything (a file, a link) appeared meanwhile
        except FileExistsError:
            raise InitRefused(
                f"{output} exists (it appeared after the check); mlops init never overwrites: "
                "remove or rename it, or choose --output"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
