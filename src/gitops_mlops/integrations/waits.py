"""How long an integration may wait, read from its environment variable: one reader, so
every timeout setting takes the same values and says the same thing when it is wrong."""

from __future__ import annotations

from collections.abc import Mapping

from gitops_mlops.errors import MlopsError

LONGEST = 3600.0  # an hour: longer is a mistake, not a slow cluster or store


def seconds(env: Mapping[str, str], name: str, default: float, error: type[MlopsError]) -> float:
    """`env[name]` as seconds (`default` when unset or blank), in (0, LONGEST]; else `error`."""
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise error(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value <= LONGEST:  # NaN and infinity too
        raise error(f"{name}={raw!r} must be between 0 and {LONGEST:g} seconds")
    return value
