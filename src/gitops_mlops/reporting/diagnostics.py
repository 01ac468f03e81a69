"""Diagnostics rendered for people (text), tools (JSON) and GitHub (annotations)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from gitops_mlops.errors import Diagnostic
from gitops_mlops.reporting.github import annotation


def as_text(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(str(d) for d in diagnostics)


def as_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([asdict(d) for d in diagnostics], indent=2)


def as_annotations(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(annotation("error", d.message, d.file, d.line, d.column) for d in diagnostics)
