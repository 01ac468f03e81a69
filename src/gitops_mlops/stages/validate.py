"""Stage 1: load a spec, check it against the schema and the semantic rules, build a Spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops_mlops.errors import Diagnostic, SpecError
from gitops_mlops.spec import document, model, schema, semantics


@dataclass(frozen=True)
class ValidateContext:
    spec_path: Path
    display: str  # the name used for the file in messages (as the user typed it)


def validate(ctx: ValidateContext) -> model.Spec:
    """The spec with defaults applied; raises SpecError listing every problem found."""
    try:
        doc = document.load_file(ctx.spec_path, ctx.display)
    except document.DocumentError as err:
        raise SpecError([Diagnostic(ctx.display, err.line, err.column, "", err.message)]) from None
    # One pass: the semantic checks read every part the schema accepted, so every problem
    # of the file is reported at once.
    checked = schema.check_parts(doc)
    spec_dir = ctx.spec_path.parent.absolute()
    root = semantics.repository_root(spec_dir)
    found = checked.diagnostics + semantics.check(doc, spec_dir, root, checked.invalid)
    if found:
        raise SpecError(sorted(found, key=lambda d: (d.line, d.column)))
    locations = {schema.display_path(k): (v.line, v.column) for k, v in doc.values.items()}
    return model.build(doc.data, ctx.spec_path, locations, doc.digest)


def load(spec_path: Path) -> model.Spec:
    """Validate the spec at `spec_path` (the form every later stage uses)."""
    return validate(ValidateContext(spec_path, str(spec_path)))
