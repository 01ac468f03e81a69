"""The model card: CycloneDX 1.6 fields (checked by the library's strict schema validator) and
the Markdown card built from them, safe with any names the spec or the data hold."""

from __future__ import annotations

import json
import re
from types import MappingProxyType

from gitops_mlops import model_card
from gitops_mlops.attestations import KINDS
from gitops_mlops.attestations.sbom import validate
from gitops_mlops.records.metrics import Estimate, IntervalSettings, Metrics
from tests.unit.test_attestations import facts

HOSTILE = "<script>alert(1)</script> | ``` `x` ```"
METRICS = Metrics(
    metrics=MappingProxyType(
        {
            "accuracy": Estimate(0.93, 0.88, 0.97, "wilson"),
            "roc_auc_ovr": Estimate(None, reason="one class | only"),
            "latency_p95_ms": Estimate(4.2),
        }
    ),
    slices=MappingProxyType({HOSTILE: MappingProxyType({"accuracy": Estimate(0.8, 0.6, 0.9)})}),
    slice_rows=MappingProxyType({HOSTILE: 17}),
    n_test=45,
    confidence=IntervalSettings(0.9, 500, 0),
)


def card(**changes: object) -> model_card.CardFacts:
    fields: dict[str, object] = {
        "name": "iris-classifier",
        "version": "0123456789ab",
        "task": "classification",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "description": f"Sorts flowers. {HOSTILE}",
        "limitations": ("Three species only.", HOSTILE),
        "metrics": METRICS,
        "data": model_card.DataFacts(
            source="data/train.csv",
            test_source=None,
            digest="sha256:" + "d" * 64,
            target="species",
            features=("petal", HOSTILE),
            classes=("setosa", "virginica"),
            n_train=105,
            n_test=45,
        ),
        "model_digest": "sha256:" + "2" * 64,
        "git_commit": "c" * 40,
    }
    return model_card.CardFacts(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_card_is_valid_cyclonedx_1_6_inside_an_sbom() -> None:
    bom = KINDS["sbom"].make(facts())
    for component in bom["components"]:
        if component["type"] == "machine-learning-model":
            component["modelCard"] = model_card.cyclonedx(card())
    validate(bom)  # strict: an unknown or mistyped field is an error
    fields = model_card.cyclonedx(card())
    assert fields["considerations"] == {
        "useCases": [f"Sorts flowers. {HOSTILE}"],
        "technicalLimitations": ["Three species only.", HOSTILE],
    }
    assert fields["modelParameters"]["datasets"] == [
        {
            "type": "dataset",
            "name": "data/train.csv",
            "description": f"105 training rows, 45 test rows; digest sha256:{'d' * 64}",
        }
    ]
    metrics = fields["quantitativeAnalysis"]["performanceMetrics"]
    assert {"type": "latency_p95_ms", "value": "4.2"} in metrics  # the SBOM keeps latency
    assert {
        "type": "accuracy",
        "value": "0.8",
        "slice": HOSTILE,
        "confidenceInterval": {"lowerBound": "0.6", "upperBound": "0.9"},
    } in metrics


def test_the_markdown_card_has_every_section_and_no_latency() -> None:
    text = model_card.markdown(card())
    assert model_card.describes(text) == ("iris-classifier", "0123456789ab")
    sections = re.findall(r"^##+ (.+)$", text, re.MULTILINE)
    assert sections == ["Intended use", "Model", "Data", "Metrics", "Slices", "Limitations"]
    assert "On the 45 test rows, with 90% intervals." in text
    assert "| accuracy | 0.93 | [0.88, 0.97] |" in text
    assert "| roc_auc_ovr | — | — (one class \\| only) |" in text
    assert "latency" not in text.split("<details>")[0].replace("Latency depends", "")
    assert "| rows | 105 for training, 45 held out for testing |" in text
    assert "| target | `species` (2 classes: setosa, virginica) |" in text
    embedded = text.split("json\n", 1)[1].rsplit("\n````", 1)[0]
    assert json.loads(embedded) == model_card.cyclonedx(card(), latency=False)


def test_names_from_the_spec_or_the_data_cannot_inject_markup() -> None:
    text = model_card.markdown(card())
    lines = text.splitlines()
    intended = lines[lines.index("## Intended use") + 2]
    assert intended.startswith("Sorts flowers. &lt;script&gt;alert(1)&lt;/script&gt;")
    assert f"- {intended.removeprefix('Sorts flowers. ')}" in lines  # the limitation
    # Outside code spans (where CommonMark shows text as it is) no tag is left.
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text.split("<details>")[0])
    assert "<script>" not in prose
    # The JSON block's fence is longer than any backtick run inside it, so it cannot close.
    fence = re.search(r"^(`{3,})json$", text, re.MULTILINE)
    assert fence is not None and len(fence[1]) == 4
    # A backtick in a feature name cannot end its code span; a pipe cannot end a cell.
    features = next(line for line in text.splitlines() if line.startswith("| features |"))
    assert features.count(" | ") == 1 and features.endswith(" |")
    assert features.endswith("```` <script>alert(1)</script> \\| ``` `x` ``` ```` |")


def test_without_description_or_limitations_the_card_says_where_to_write_them() -> None:
    text = model_card.markdown(card(description="  ", limitations=(), data=None))
    assert "say what the model is for, and for whom, in `metadata.description`" in text
    assert "*None stated: list them in `metadata.limitations`.*" in text
    assert "## Data" not in text
    assert "considerations" not in model_card.cyclonedx(card(description="", limitations=()))
