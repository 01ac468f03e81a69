"""report.html: the run's whole report in one self-contained page, with plots.

Everything is inline: the plots are SVG drawn by matplotlib (`reporting/plots.py`), the
style is one <style> block, and there is no script, no font, no image and no link to fetch.
A Content-Security-Policy that allows nothing but inline style (`default-src 'none'`) keeps
it so even if something slipped in, so the page opens offline and is safe to upload as a
workflow artifact and open from there. Every value from the spec, the data or a record
(model, metric, slice, class and column names, the description, reasons) is escaped here;
inside the SVG, matplotlib's writer escapes it.

Sections: the verdict; per table (every test row, then each slice) the metrics with their
intervals and, where known, the champion's value and Δ = candidate - champion (from
comparison.json, else the gate rows), as a table and a forest plot; then what evaluation
summarised of the predictions (metrics.json's `curves`, the champion's beside them when it
predicted the same rows): residuals (regression), the confusion matrix (classifiers), ROC,
precision-recall and calibration curves (binary classifiers with probabilities); the gate;
the provenance. Without matplotlib every table is still there and each plot says why not.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gitops_mlops.records.comparison import Comparison
from gitops_mlops.records.metrics import Estimate, Metrics, MetricTable
from gitops_mlops.records.verdict import Verdict
from gitops_mlops.reporting import plots
from gitops_mlops.reporting.numbers import number, signed, span
from gitops_mlops.spec.model import Spec

if TYPE_CHECKING:
    from gitops_mlops.predictions import Predictions

CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  margin: 2em auto; max-width: 72em; padding: 0 1em; color: #1f2328; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left;
  vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.note { color: #57606a; } code { font-size: 0.9em; overflow-wrap: anywhere; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
"""
NO_PLOTS = "Plots need matplotlib, which is not installed: pip install 'gitops-mlops[ml]'."


@dataclass(frozen=True)
class Champion:
    """What is known of the champion for one metric on one set of rows."""

    value: float | None
    delta: float | None = None  # candidate - champion
    delta_low: float | None = None
    delta_high: float | None = None
    verdict: str | None = None  # better | worse | no detectable difference | ...


@dataclass(frozen=True)
class Page:
    """The typed records the page is made from (the report stage reads them from the run)."""

    spec: Spec
    metrics: Metrics  # with `curves`, what evaluation summarised of the predictions
    verdict: Verdict | None
    manifest: Mapping[str, Any]  # the model bundle's manifest: version, digests, commit
    comparison: Comparison | None = None  # the champion, metric by metric (and its curves)
    predictions: Predictions | None = None  # the candidate's rows (regression's scatter plot)
    image: str = ""  # the serving image pushed, by digest
    test_rows_digest: str = ""  # sha256 of the test rows the metrics are measured on


def render(page: Page) -> str:
    """The page, as text (the caller writes it)."""
    spec, measured = page.spec, page.metrics
    version = str(page.manifest.get("model_version", "")) or "candidate"
    title = f"{spec.metadata.name} {version}"
    level = f"{measured.confidence.level:.0%}" if measured.confidence else "no"
    champion = _champion(page)
    body = [*_heading(page, title, level)]
    figures = _Figures()
    tables: list[tuple[str | None, MetricTable]] = [(None, measured.metrics)]
    tables += list(measured.slices.items())
    for name, table in tables:
        rows = measured.n_test if name is None else measured.slice_rows.get(name)
        heading = "Metrics on every test row" if name is None else f"Slice {name}"
        body.append(f"<h2>{_e(heading)}{f' ({rows} rows)' if rows is not None else ''}</h2>")
        body.append(_metric_table(name, table, champion, level))
        forest = _forest_rows(name, table, champion)
        if forest:
            body.append(figures.draw(plots.forest, forest, level))
    if measured.custom:
        body.append("<h2>Metrics reported by the training command</h2>")
        body.append(_pairs([(name, number(value)) for name, value in measured.custom.items()]))
    body += _prediction_sections(page, figures)
    body += ["<h2>Gate</h2>", _gate_table(page.verdict)]
    body += ["<h2>Provenance</h2>", _provenance(page)]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _champion(page: Page) -> dict[tuple[str | None, str], Champion]:
    """(slice, metric) -> the champion's side: from the comparison when there is one (Δ with
    its interval and a verdict when both models predicted rows), else from the gate rows."""
    comparison = page.comparison
    if comparison is None or comparison.mode == "none":
        verdict = page.verdict
        return {
            (row.slice, row.metric): Champion(row.champion)
            for row in (verdict.rows if verdict else ())
            if row.champion is not None
        }
    resampled = comparison.mode in ("paired", "unpaired")
    return {
        (row.slice, row.metric): Champion(
            row.champion,
            delta=row.delta,
            delta_low=row.ci_low,
            delta_high=row.ci_high,
            verdict=row.verdict if resampled else None,
        )
        for row in comparison.rows
    }


class _Figures:
    """Draws each plot with ids unique in the page, or says why there is none."""

    def __init__(self) -> None:
        self.count = 0
        self.available = plots.available()

    def draw(self, plot: Any, *args: Any) -> str:
        if not self.available:
            return f"<p class='note'>{_e(NO_PLOTS)}</p>"
        self.count += 1
        return f"<figure>{plots.draw(f'f{self.count}-', plot, *args)}</figure>"


def _heading(page: Page, title: str, level: str) -> list[str]:
    verdict = page.verdict
    if verdict is None:
        state = "<span class='note'>not gated</span>"
    elif verdict.passed:
        state = "<span class='pass'>passed the gate</span>"
    else:
        state = "<span class='fail'>failed the gate</span>"
    lines = [f"<h1>{_e(title)}: {state}</h1>"]
    if page.spec.metadata.description:
        lines.append(f"<p>{_e(page.spec.metadata.description)}</p>")
    lines.append(f"<p>{_e(_compared(page))}</p>")
    n = page.metrics.n_test
    lines.append(
        f"<p class='note'>Test rows: {'—' if n is None else n}. Intervals: {_e(level)}"
        " confidence. Δ = candidate - champion.</p>"
    )
    return lines


def _compared(page: Page) -> str:
    comparison, verdict = page.comparison, page.verdict
    if comparison is not None and comparison.mode != "none":
        who = comparison.champion + (f" ({comparison.source})" if comparison.source else "")
        if comparison.mode == "paired":
            return (
                f"Compared with {who}: its model re-evaluated on the same {comparison.n_rows} "
                "test rows; Δ intervals resample both models on the same rows."
            )
        if comparison.mode == "unpaired":
            return f"Compared with {who} on other rows: Δ intervals are unpaired."
        return f"Compared with {who}: its recorded metrics, not on these rows ({comparison.note})."
    if verdict is not None and verdict.champion is not None:
        who = f"{verdict.champion.environment} {verdict.champion.version}"
        return f"Compared with {who}: its recorded metrics, measured on its own test rows."
    return "No champion release to compare with."


def _metric_table(
    slice_name: str | None,
    table: MetricTable,
    champion: Mapping[tuple[str | None, str], Champion],
    level: str,
) -> str:
    head = (
        f"<tr><th>metric</th><th>candidate</th><th>{_e(level)} interval</th><th>champion</th>"
        "<th>Δ</th><th>Δ interval</th><th>verdict</th></tr>"
    )
    rows = []
    for name, entry in table.items():
        theirs = _theirs(champion, slice_name, name, entry)
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='n'>{number(entry.value)}</td>"
            f"<td class='n'>{_interval(entry)}</td><td class='n'>{number(theirs.value)}</td>"
            f"<td class='n'>{signed(theirs.delta)}</td>"
            f"<td class='n'>{span(theirs.delta_low, theirs.delta_high, sign=True)}</td>"
            f"<td>{_e(theirs.verdict or '—')}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _forest_rows(
    slice_name: str | None,
    table: MetricTable,
    champion: Mapping[tuple[str | None, str], Champion],
) -> list[plots.ForestRow]:
    """The metrics that have a value (latency too: its point, without an interval)."""
    rows = []
    for name, entry in table.items():
        if entry.value is None:
            continue
        theirs = _theirs(champion, slice_name, name, entry)
        rows.append(
            plots.ForestRow(
                name,
                entry.value,
                entry.ci_low,
                entry.ci_high,
                theirs.value,
                theirs.delta,
                theirs.delta_low,
                theirs.delta_high,
            )
        )
    return rows


def _theirs(
    champion: Mapping[tuple[str | None, str], Champion],
    slice_name: str | None,
    name: str,
    entry: Estimate,
) -> Champion:
    """The champion's side of one metric, with Δ of the point values when none was given."""
    theirs = champion.get((slice_name, name)) or Champion(None)
    if theirs.delta is None and theirs.value is not None and entry.value is not None:
        return replace(theirs, delta=entry.value - theirs.value)
    return theirs


def _prediction_sections(page: Page, figures: _Figures) -> list[str]:
    """What evaluation summarised of the predictions (metrics.json's `curves`)."""
    found = page.metrics.curves
    theirs = page.comparison.curves if page.comparison is not None else None
    if found is None:
        return []
    sections = []
    if found.residuals is not None:
        held = theirs.residuals if theirs is not None else None
        sections += ["<h2>Residuals</h2>"]
        sections.append(figures.draw(plots.residuals, found.residuals, held, page.predictions))
    if found.confusion is not None:
        labels = [str(label) for label in found.confusion.labels]
        counts = found.confusion.counts
        sections += ["<h2>Confusion matrix</h2>", _confusion_table(labels, counts)]
        sections.append(figures.draw(plots.confusion, labels, counts))
    if found.roc is not None or found.precision_recall is not None:
        positive = page.metrics.positive_label
        named = "" if positive is None else f" (positive class: {_e(positive)})"
        sections.append(f"<h2>ROC, precision-recall and calibration{named}</h2>")
        sections.append(figures.draw(plots.binary_curves, found, theirs))
    return sections


def _confusion_table(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    if len(labels) > 2 * plots.ANNOTATED_CLASSES:
        return f"<p class='note'>{len(labels)} classes: too many for a table.</p>"
    head = "<tr><th>true ↓ predicted →</th>" + "".join(f"<th>{_e(x)}</th>" for x in labels)
    rows = [
        f"<tr><th>{_e(label)}</th>" + "".join(f"<td class='n'>{c}</td>" for c in row) + "</tr>"
        for label, row in zip(labels, counts, strict=True)
    ]
    return f"<table>{head}</tr>{''.join(rows)}</table>"


def _gate_table(verdict: Verdict | None) -> str:
    if verdict is None:
        return "<p>The run was not gated.</p>"
    if not verdict.rows:
        return "<p>No thresholds are set (<code>gate.thresholds</code>): the gate passes.</p>"
    head = (
        "<tr><th></th><th>metric</th><th>check</th><th>observed</th><th>bound</th>"
        "<th>champion</th><th>reason</th></tr>"
    )
    rows = [
        f"<tr><td class='{'pass' if r.passed else 'fail'}'>{'pass' if r.passed else 'FAIL'}</td>"
        f"<td>{_e(r.label)}</td><td>{_e(r.kind)} ({_e(r.on)})</td>"
        f"<td class='n'>{number(r.observed)}</td><td class='n'>{number(r.bound)}</td>"
        f"<td class='n'>{number(r.champion)}</td><td>{_e(r.reason)}</td></tr>"
        for r in verdict.rows
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _provenance(page: Page) -> str:
    manifest = page.manifest
    features = manifest.get("features")
    versions = manifest.get("versions")
    facts: list[tuple[str, object]] = [
        ("model", page.spec.metadata.name),
        ("version", manifest.get("model_version")),
        ("model digest", manifest.get("model_digest")),
        ("spec", page.spec.file.name),
        ("spec digest", manifest.get("spec_digest") or page.spec.digest),
        ("data digest", manifest.get("data_digest")),
        ("test rows digest", page.test_rows_digest),
        ("git commit", manifest.get("git_commit")),
        ("estimator", manifest.get("estimator") or manifest.get("trainer")),
        ("parameters", _inline(manifest.get("params"))),
        ("target", manifest.get("target")),
        ("training rows", manifest.get("n_train")),
        ("test rows", manifest.get("n_test")),
        ("image", page.image),
    ]
    if isinstance(features, list):
        names = [str(f.get("name")) if isinstance(f, dict) else str(f) for f in features]
        facts.append(("features", ", ".join(names)))
    if isinstance(versions, dict):
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return _pairs([(k, v) for k, v in facts if v not in (None, "")], code=True)


def _inline(value: object) -> str | None:
    if not isinstance(value, dict) or not value:
        return None
    return ", ".join(f"{k}={v!r}" for k, v in value.items())


def _pairs(facts: Sequence[tuple[str, object]], code: bool = False) -> str:
    wrap = ("<code>", "</code>") if code else ("", "")
    rows = [f"<tr><th>{_e(k)}</th><td>{wrap[0]}{_e(v)}{wrap[1]}</td></tr>" for k, v in facts]
    return f"<table>{''.join(rows)}</table>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _interval(entry: Estimate) -> str:
    if entry.ci_low is None or entry.ci_high is None:
        return "—" if entry.reason is None else f"— ({_e(entry.reason)})"
    method = f" {_e(entry.method)}" if entry.method else ""
    return span(entry.ci_low, entry.ci_high) + method
