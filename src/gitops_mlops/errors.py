"""The error tree. Each class owns one exit code; only `cli.main` turns them into exits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a file, located at a 1-based line and column."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # One line per problem, whatever the file held (keys and values may contain newlines).
        message = self.message.replace("\r", "\\r").replace("\n", "\\n")
        return f"{self.file}:{self.line}:{self.column}: {message}"


class MlopsError(Exception):
    """Anything the user can act on. Exit code 1 unless a subclass says otherwise."""

    exit_code = 1


class SpecError(MlopsError):
    """The spec (or a file it names) is invalid; carries every diagnostic found."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class UsageError(MlopsError):
    """The command line itself is wrong: an unknown option, or an argument of the wrong kind
    (a spec where a run directory is expected, ...). The message says what was expected."""

    exit_code = 2


class GateFailed(MlopsError):
    exit_code = 4


class BuildError(MlopsError):
    exit_code = 5


class PromotionConflict(MlopsError):
    exit_code = 6


class DataUnavailable(MlopsError):
    """Data the spec names could not be read (a missing object, denied access, an endpoint
    that does not answer): located at the spec line, but not a problem of the spec itself,
    so exit code 1."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(str(diagnostic))


class VerificationFailed(MlopsError):
    """An image's attestations are missing or do not check out: it is not promoted."""

    exit_code = 7
