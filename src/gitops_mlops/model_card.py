"""The model card: one set of fields, as CycloneDX 1.6's `modelCard` and as `model-card.md`.

CycloneDX rather than skops.card: the image's SBOM already carries a CycloneDX model card
(attestations/sbom.py builds it here), so the card a reviewer reads in the pull request and
the one signed into the image are the same fields from one function; skops.card would be a
second format, and it builds its card from a loaded model object, which the report stage
never needs to load.

Fields: intended use (`metadata.description`), the model (task, estimator, version, digest,
commit), the data (source, digest, rows, target, features, classes), every metric with its
interval overall and per slice, and limitations (`metadata.limitations`). The Markdown card
ends with the CycloneDX object itself. Latency is left out of the Markdown card: it depends on
the machine that measured it, and the card of a model version must read the same whichever
run wrote it (a promotion rerun then changes nothing); the release record keeps it.

Pure: records in, text out. `stages/report.py` writes the card into the run directory and
`stages/promote.py` puts it beside the release record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mlops import data_url
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.reporting.numbers import number, span

FILE = "model-card.md"
_MARKER = re.compile(r"^<!-- gitops-mlops:model-card model=(\S+) version=(\S+) -->$")
_LATENCY = "latency_"


@dataclass(frozen=True)
class DataFacts:
    source: str  # `builtin iris`, `data/train.csv`
    test_source: str | None  # a separate test file; None: split from the training data
    digest: str | None
    target: str | None
    features: tuple[str, ...] = ()
    classes: tuple[Any, ...] | None = None
    n_train: int | None = None
    n_test: int | None = None


@dataclass(frozen=True)
class CardFacts:
    name: str
    version: str
    task: str
    estimator: str | None
    description: str
    limitations: tuple[str, ...]
    metrics: Metrics
    data: DataFacts | None = None
    model_digest: str | None = None
    git_commit: str | None = None


# --- CycloneDX ----------------------------------------------------------------------------
def cyclonedx(facts: CardFacts, latency: bool = True) -> dict[str, Any]:
    """CycloneDX 1.6's modelCard object (checked with the SBOM's strict schema validator)."""
    measured = facts.metrics.to_json()
    metrics = performance_metrics(measured.get("metrics") or {}, None, latency)
    for name, table in (measured.get("slices") or {}).items():
        metrics += performance_metrics(table or {}, str(name), latency)
    family = facts.estimator.rsplit(".", 1)[-1] if facts.estimator else "unknown"
    parameters: dict[str, Any] = {
        "approach": {"type": "supervised"},
        "task": facts.task,
        "architectureFamily": family,
        "modelArchitecture": facts.estimator or "unknown",
    }
    if facts.data is not None:
        parameters["datasets"] = [_dataset(facts.data)]
    card: dict[str, Any] = {
        "modelParameters": parameters,
        "quantitativeAnalysis": {"performanceMetrics": metrics},
    }
    considerations: dict[str, Any] = {}
    if facts.description.strip():
        considerations["useCases"] = [facts.description.strip()]
    if facts.limitations:
        considerations["technicalLimitations"] = list(facts.limitations)
    if considerations:
        card["considerations"] = considerations
    return card


def performance_metrics(
    table: Mapping[str, Any], slice_name: str | None, latency: bool = True
) -> list[dict[str, Any]]:
    """CycloneDX performanceMetrics from a metrics.json table (values as strings, as the
    schema wants them); metrics without a value are left out."""
    rows = []
    for name, entry in table.items():
        if not latency and str(name).startswith(_LATENCY):
            continue
        value = entry.get("value") if isinstance(entry, Mapping) else entry
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        row: dict[str, Any] = {"type": str(name), "value": f"{value:.6g}"}
        if slice_name is not None:
            row["slice"] = slice_name
        low, high = (
            (entry.get("ci_low"), entry.get("ci_high"))
            if isinstance(entry, Mapping)
            else (None, None)
        )
        if isinstance(low, int | float) and isinstance(high, int | float):
            row["confidenceInterval"] = {"lowerBound": f"{low:.6g}", "upperBound": f"{high:.6g}"}
        rows.append(row)
    return rows


def _dataset(data: DataFacts) -> dict[str, Any]:
    rows = ", ".join(
        part
        for part in (
            f"{data.n_train} training rows" if data.n_train is not None else "",
            f"{data.n_test} test rows" if data.n_test is not None else "",
        )
        if part
    )
    described = "; ".join(p for p in (rows, f"digest {data.digest}" if data.digest else "") if p)
    found: dict[str, Any] = {"type": "dataset", "name": data_url.shown(data.source)}
    if described:
        found["description"] = described
    return found


# --- Markdown -----------------------------------------------------------------------------
def marker(name: str, version: str) -> str:
    return f"<!-- gitops-mlops:model-card model={name} version={version} -->"


def describes(text: str | None) -> tuple[str, str] | None:
    """(model, version) a card says it is about (its first line), or None."""
    if not text:
        return None
    match = _MARKER.match(text.split("\n", 1)[0])
    return None if match is None else (match[1], match[2])


def markdown(facts: CardFacts) -> str:
    level = facts.metrics.confidence.level if facts.metrics.confidence else None
    lines = [
        marker(facts.name, facts.version),
        f"# Model card: {_text(facts.name)} `{facts.version}`",
        "",
        "## Intended use",
        "",
        _text(facts.description.strip())
        if facts.description.strip()
        else "*Not stated: say what the model is for, and for whom, in `metadata.description`.*",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| task | {_cell(facts.task)} |",
        f"| estimator | {_code(facts.estimator or 'a training command (model.command)')} |",
        f"| version | {_code(facts.version)} |",
    ]
    if facts.model_digest:
        lines.append(f"| model digest | {_code(facts.model_digest)} |")
    if facts.git_commit:
        lines.append(f"| trained from commit | {_code(facts.git_commit)} |")
    if facts.data is not None:
        lines += ["", "## Data", "", *_data_lines(facts.data)]
    lines += ["", "## Metrics", "", *_metric_lines(facts.metrics, level)]
    lines += ["", "## Limitations", ""]
    if facts.limitations:
        lines += [f"- {_text(item)}" for item in facts.limitations]
    else:
        lines.append("*None stated: list them in `metadata.limitations`.*")
    block = json.dumps(cyclonedx(facts, latency=False), indent=2, ensure_ascii=False)
    fence = "`" * max(3, _longest_backticks(block) + 1)
    lines += [
        "",
        "<details><summary>The same card as CycloneDX 1.6 <code>modelCard</code></summary>",
        "",
        f"{fence}json",
        block,
        fence,
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def _data_lines(data: DataFacts) -> list[str]:
    # Shown through data_url: a pre-signed URL's query is a credential, and the card goes to
    # MLflow and into the image's SBOM.
    lines = ["| | |", "|---|---|", f"| training data | {_code(data_url.shown(data.source))} |"]
    if data.test_source:
        lines.append(f"| test data | {_code(data_url.shown(data.test_source))} |")
    if data.digest:
        lines.append(f"| data digest | {_code(data.digest)} |")
    rows = []
    if data.n_train is not None:
        rows.append(f"{data.n_train} for training")
    if data.n_test is not None:
        held = "held out for testing" if data.test_source is None else "in the test data"
        rows.append(f"{data.n_test} {held}")
    if rows:
        lines.append(f"| rows | {', '.join(rows)} |")
    if data.target:
        classes = ""
        if data.classes is not None:
            shown = ", ".join(_text(str(c)) for c in data.classes[:20])
            more = ", …" if len(data.classes) > 20 else ""
            classes = f" ({len(data.classes)} classes: {shown}{more})".replace("|", "\\|")
        lines.append(f"| target | {_code(data.target)}{classes} |")
    if data.features:
        shown = ", ".join(_code(f) for f in data.features[:30])
        more = f", … ({len(data.features)} in all)" if len(data.features) > 30 else ""
        lines.append(f"| features | {len(data.features)}: {shown}{more} |")
    return lines


def _metric_lines(metrics: Metrics, level: float | None) -> list[str]:
    where = (
        f"On the {metrics.n_test} test rows" if metrics.n_test is not None else "On the test rows"
    )
    intervals = f", with {level:.0%} intervals" if level is not None else ", without intervals"
    lines = [
        f"{where}{intervals}. Latency depends on the machine and is left out (the release "
        "record has it).",
        "",
        "| metric | value | interval |",
        "|---|---:|---|",
    ]
    lines += _metric_rows(metrics.metrics)
    if metrics.slices:
        lines += ["", "### Slices", "", "| slice | rows | metric | value | interval |"]
        lines.append("|---|---:|---|---:|---|")
        for name, table in metrics.slices.items():
            rows = metrics.slice_rows.get(name)
            for row in _metric_rows(table):
                count = "—" if rows is None else str(rows)
                lines.append(f"| {_cell(name)} | {count} {row}")
    return lines


def _metric_rows(table: Mapping[str, Any]) -> list[str]:
    rows = []
    for name, estimate in table.items():
        if name.startswith(_LATENCY):
            continue
        if estimate.value is None:
            why = f" ({_cell(estimate.reason)})" if estimate.reason else ""
            rows.append(f"| {_cell(name)} | — | —{why} |")
            continue
        interval = span(estimate.ci_low, estimate.ci_high)
        rows.append(f"| {_cell(name)} | {number(estimate.value)} | {interval} |")
    return rows


def _text(value: str) -> str:
    """Text from the spec or the data, shown as text: no HTML, one line."""
    flat = " ".join(value.split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: str) -> str:
    return _text(value).replace("|", "\\|")


def _code(value: str) -> str:
    """Inline code that no backtick in `value` can end early."""
    flat = " ".join(value.split()).replace("|", "\\|")
    ticks = "`" * (_longest_backticks(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
