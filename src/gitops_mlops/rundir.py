"""The run directory: one folder per run; the only code that knows where its files are.

```
model/model.skops     the model (see bundle.py)
model/manifest.json   digests, versions, features of the model bundle
model/command_metrics.json   metrics a training command reported (model.command)
data/train.csv, data/test.csv, command-output/   a training command's input and output
run.json              the spec the run was made from            records.run.RunInfo
metrics.json          what evaluate measured                    records.metrics.Metrics
predictions.npz       the model's predictions of the test rows  records.predictions.PredictionSet
champion-predictions.npz   the champion's, of the same rows     records.predictions.PredictionSet
comparison.json       candidate vs champion, metric by metric   records.comparison.Comparison
verdict.json          the gate's rows                           records.verdict.Verdict
report.md             the human report
report.html           the same, self-contained, with plots       reporting/html.py
model-card.md         the model card (model_card.py)
image/                the build contexts (packages, model-image)
build.json            the image built and pushed                records.build.BuildRecord
promotion.json        the latest promotion                      records.promotion.PromotionRecord
```

Each record has one reader and one writer here; stages pass records in memory and write
each once. See docs/architecture.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gitops_mlops import bundle
from gitops_mlops.errors import MlopsError
from gitops_mlops.records.build import BuildRecord
from gitops_mlops.records.comparison import Comparison
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.records.model_summary import ModelSummary
from gitops_mlops.records.promotion import PromotionRecord
from gitops_mlops.records.run import RunInfo
from gitops_mlops.records.verdict import Verdict

if TYPE_CHECKING:  # numpy is imported only by the commands that read predictions
    from gitops_mlops.records.predictions import PredictionSet

MLOPS_DIR = Path(".mlops")
DEFAULT_PARENT = MLOPS_DIR / "runs"
DISPATCH_DIR = MLOPS_DIR / "dispatch"
_R = TypeVar("_R")


@dataclass(frozen=True)
class RunDir:
    root: Path

    # --- paths ----------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def model_file(self) -> Path:
        return self.model_dir / bundle.MODEL_FILE

    @property
    def manifest_file(self) -> Path:
        return self.model_dir / bundle.MANIFEST_FILE

    @property
    def command_metrics(self) -> Path:
        """Metrics a training command reported (model.command), kept with the model."""
        return self.model_dir / "command_metrics.json"

    @property
    def onnx_dir(self) -> Path:
        """The model converted for the onnx serving runtime, with its proof (at build time)."""
        return self.root / "onnx"

    @property
    def data_dir(self) -> Path:
        """The split a training command reads (model.command)."""
        return self.root / "data"

    @property
    def train_csv(self) -> Path:
        return self.data_dir / "train.csv"

    @property
    def test_csv(self) -> Path:
        return self.data_dir / "test.csv"

    @property
    def command_output(self) -> Path:
        """Where a training command writes its model.skops (MLOPS_OUTPUT_DIR)."""
        return self.root / "command-output"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.npz"

    @property
    def champion_predictions(self) -> Path:
        """The champion's predictions of the same rows (when it was re-evaluated)."""
        return self.root / "champion-predictions.npz"

    @property
    def comparison(self) -> Path:
        return self.root / "comparison.json"

    @property
    def verdict(self) -> Path:
        return self.root / "verdict.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def model_card(self) -> Path:
        return self.root / "model-card.md"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def build_json(self) -> Path:
        return self.root / "build.json"

    @property
    def promotion_json(self) -> Path:
        return self.root / "promotion.json"

    @property
    def image_dir(self) -> Path:
        """The build contexts: `packages/` and `model-image/`."""
        return self.root / "image"

    # --- records --------------------------------------------------------------------------
    def read_run_info(self) -> RunInfo:
        return _read(self.run_json, "run.json", RunInfo.from_json)

    def write_run_info(self, info: RunInfo) -> None:
        write_json(self.run_json, info.to_json())

    def spec_path(self) -> Path:
        """The spec this run was made from (recorded by `mlops train`)."""
        return self.read_run_info().spec

    def manifest(self) -> dict[str, Any]:
        """The model bundle's manifest, every file's sha256 checked."""
        return bundle.read_manifest(self.model_dir)

    def read_model_summary(self) -> ModelSummary:
        """The manifest's account of the model, its files not hashed (for listing, cards)."""
        return _read(self.manifest_file, "model/manifest.json", ModelSummary.from_json)

    def read_metrics(self) -> Metrics:
        return _read(self.metrics, "metrics.json", Metrics.from_json)

    def write_metrics(self, metrics: Metrics) -> None:
        write_json(self.metrics, metrics.to_json())

    def read_predictions(self) -> PredictionSet:
        from gitops_mlops.records import predictions

        return predictions.read(self.predictions)

    def find_predictions(self) -> PredictionSet | None:
        return self.read_predictions() if self.predictions.is_file() else None

    def write_predictions(self, found: PredictionSet) -> None:
        from gitops_mlops.records import predictions

        predictions.write(self.predictions, found)

    def write_champion_predictions(self, found: PredictionSet | None) -> None:
        if found is None:
            self.champion_predictions.unlink(missing_ok=True)
            return
        from gitops_mlops.records import predictions

        predictions.write(self.champion_predictions, found)

    def find_comparison(self) -> Comparison | None:
        if not self.comparison.is_file():
            return None
        return _read(self.comparison, "comparison.json", Comparison.from_json)

    def write_comparison(self, comparison: Comparison) -> None:
        write_json(self.comparison, comparison.to_json())

    def read_verdict(self) -> Verdict:
        return _read(self.verdict, "verdict.json", Verdict.from_json)

    def find_verdict(self) -> Verdict | None:
        return self.read_verdict() if self.verdict.is_file() else None

    def write_verdict(self, verdict: Verdict) -> None:
        write_json(self.verdict, verdict.to_json())

    def read_report(self) -> str:
        return self.report.read_text(encoding="utf-8") if self.report.is_file() else ""

    def write_report(self, text: str) -> None:
        write_text(self.report, text)

    def write_report_html(self, page: str) -> None:
        write_text(self.report_html, page)

    def find_model_card(self) -> str | None:
        return self.model_card.read_text(encoding="utf-8") if self.model_card.is_file() else None

    def write_model_card(self, text: str) -> None:
        write_text(self.model_card, text)

    def find_build(self) -> BuildRecord | None:
        if not self.build_json.is_file():
            return None
        return _read(self.build_json, "build.json", BuildRecord.from_json)

    def write_build(self, build: BuildRecord) -> None:
        write_json(self.build_json, build.to_json())

    def find_promotion(self) -> PromotionRecord | None:
        if not self.promotion_json.is_file():
            return None
        return _read(self.promotion_json, "promotion.json", PromotionRecord.from_json)

    def write_promotion(self, promotion: PromotionRecord) -> None:
        write_json(self.promotion_json, promotion.to_json())


def new_run_dir(out: Path | None) -> RunDir:
    if out is not None:
        return RunDir(out)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return RunDir(ignored_by_git(MLOPS_DIR) / DEFAULT_PARENT.relative_to(MLOPS_DIR) / stamp)


GITIGNORE = "# Made by gitops-mlops: run artifacts stay out of git.\n*\n"


def ignored_by_git(folder: Path) -> Path:
    """`folder` (.mlops), made with a `.gitignore` of `*` inside, as pytest does for its
    cache: runs never show up as untracked files in the user's repository."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists() and not ignore.is_symlink():
        write_text(ignore, GITIGNORE)
    return folder


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see half a file


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlopsError(f"{path}: no {what}; run the earlier stages first (`mlops run`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MlopsError(f"{path}: {what} is not valid JSON ({err})") from None


def _read(path: Path, what: str, parse: Callable[[object, str], _R]) -> _R:
    return parse(read_json(path, what), str(path))
