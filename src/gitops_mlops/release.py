"""Reading release records: the champion the gate compares with.

The record itself (its fields, reader and writer) is `records.release.ReleaseRecord`.
The gate's champion is the record of the environment named by `gate.champion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops_mlops import gitops_repo, guarded_yaml
from gitops_mlops.errors import MlopsError
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.records.metrics import EMPTY, Estimate
from gitops_mlops.records.release import ReleaseRecord
from gitops_mlops.spec.model import Spec


@dataclass(frozen=True)
class Champion:
    record: ReleaseRecord
    source: str  # where the record was read, for reports
    # A run directory or model bundle given as --champion: its model is read from there,
    # not from the record's image.
    model_dir: Path | None = None

    def estimate(self, metric: str, slice_name: str | None = None) -> Estimate | None:
        table = self.record.metrics if slice_name is None else self.record.slices.get(slice_name)
        return (table or EMPTY).get(metric)


def read_champion(path: Path) -> Champion:
    """`--champion PATH`: a release record file, a run directory or a model bundle folder."""
    if path.is_dir():
        return _local(path)
    return read_record(path)


def _local(path: Path) -> Champion:
    """A run directory's (or bundle's) model as the champion; its recorded metrics are the
    run's metrics.json when there is one."""
    from gitops_mlops import bundle
    from gitops_mlops.records.metrics import Metrics
    from gitops_mlops.rundir import RunDir

    run = RunDir(path)
    folder = run.model_dir if run.manifest_file.is_file() else path
    manifest = bundle.read_manifest(folder)  # every file checked against its digest
    measured = run.read_metrics() if run.metrics.is_file() else Metrics({})
    record = ReleaseRecord(
        model=str(manifest.get("name", "")),
        environment="local",
        version=str(manifest.get("model_version", "")),
        model_digest=str(manifest.get("model_digest") or "") or None,
        data_digest=str(manifest.get("data_digest") or "") or None,
        metrics=measured.metrics,
        slices=measured.slices,
    )
    return Champion(record, str(path), model_dir=folder)


def read_record(path: Path) -> Champion:
    """A release record from a file (`--champion FILE`)."""
    try:
        with path.open("rb") as file:  # never more than the loader accepts
            raw = file.read(guarded_yaml.MAX_BYTES + 1)
        if len(raw) > guarded_yaml.MAX_BYTES:
            raise guarded_yaml.YamlError(
                f"the file is over {guarded_yaml.MAX_BYTES} bytes; a release record is smaller"
            )
        text = guarded_yaml.decode(raw)
    except FileNotFoundError:
        raise MlopsError(f"{path}: release record not found") from None
    except OSError as err:
        raise MlopsError(f"{path}: cannot read the release record: {err.strerror}") from None
    except guarded_yaml.YamlError as err:
        raise MlopsError(f"{err.located(str(path))} (reading a release record)") from None
    return Champion(ReleaseRecord.from_yaml(text, str(path)), str(path))


def champion(spec: Spec, github: GitHubSettings) -> Champion | None:
    """The release record of `gate.champion`, read from the GitOps repository's base branch."""
    if spec.gate.champion is None or spec.promotion is None:
        return None
    environment = next(e for e in spec.promotion.environments if e.name == spec.gate.champion)
    text = gitops_repo.read_base_file(spec, github, environment.release_record)
    if text is None:
        return None
    source = environment.release_record
    return Champion(ReleaseRecord.from_yaml(text, source), source)
