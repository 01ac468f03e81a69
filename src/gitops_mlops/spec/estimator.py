"""Resolve `model.estimator` to a class, and tell whether it is a classifier or a regressor.

Importing scikit-learn takes over a second, so validation reads the source instead: it finds
the module file without executing it, parses it with `ast`, follows `from … import …`
re-exports and walks the class bases until it meets scikit-learn's ClassifierMixin,
RegressorMixin or BaseEstimator. Only when the source does not answer (compiled modules,
dynamic definitions) is the module imported, and only if it is allowed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gitops_mlops.spec.schema import did_you_mean

_MARKERS = {
    "sklearn.base.ClassifierMixin": "classifier",
    "sklearn.base.RegressorMixin": "regressor",
    "sklearn.base.BaseEstimator": "estimator",
}
_MAX_DEPTH = 25


@dataclass(frozen=True)
class EstimatorInfo:
    path: str
    kinds: frozenset[str]  # subset of {"classifier", "regressor", "estimator"}
    params: frozenset[str] | None  # constructor parameters; None when it takes **kwargs


class EstimatorError(Exception):
    """The estimator cannot be resolved; the message says why and what to do."""


def module_allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == top or module.startswith(top + ".") for top in ("sklearn", *allowed))


@cache  # immutable answers; `mlops plan` validates many specs naming the same estimators
def resolve(path: str, allowed: tuple[str, ...]) -> EstimatorInfo:
    module, _, name = path.rpartition(".")
    if not module_allowed(module, allowed):
        top = module.split(".")[0]
        raise EstimatorError(
            f"module {module!r} is not allowed: estimators come from sklearn unless "
            f"model.allow_modules lists {top!r}"
        )
    if _module_missing(module):
        hint = did_you_mean(module, _sibling_modules(module))
        raise EstimatorError(f"module {module!r} does not exist{hint}")
    source = _Source()
    found = source.find(module, name, 0)
    if found is not None:
        kinds, params = source.describe(found[0], found[1])
        if kinds:
            return EstimatorInfo(path, frozenset(kinds), params)
    elif _module_file(module) is not None and not source.dynamic(module, name):
        raise EstimatorError(f"{module} has no class {name!r}{suggest_class(path)}")
    return _imported(module, name, path)


def _module_missing(module: str) -> bool:
    """True when the module's package exists but no file could hold the module."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return True
    if spec is None:
        return True
    if not rest or not spec.submodule_search_locations:
        return False
    for location in spec.submodule_search_locations:
        base = Path(location, *rest)
        if base.exists() or any(base.parent.glob(base.name + ".*")):
            return False
    return True


def _imported(module: str, name: str, path: str) -> EstimatorInfo:
    """Last resort for what the source does not show: import the (allowed) module."""
    try:
        loaded = importlib.import_module(module)
    except ImportError as err:
        hint = did_you_mean(module, _sibling_modules(module))
        raise EstimatorError(f"cannot import module {module!r}: {err}{hint}") from None
    cls = getattr(loaded, name, None)
    if not inspect.isclass(cls):
        names = [n for n in dir(loaded) if not n.startswith("_")]
        raise EstimatorError(f"{module} has no class {name!r}{did_you_mean(name, names)}")
    kinds = set()
    for klass in inspect.getmro(cls):
        qualified = f"{klass.__module__}.{klass.__qualname__}"
        if qualified in _MARKERS:
            kinds.add(_MARKERS[qualified])
    estimator_type = getattr(cls, "_estimator_type", None)
    if estimator_type in ("classifier", "regressor"):
        kinds.add(str(estimator_type))
    if hasattr(cls, "fit") and hasattr(cls, "predict"):
        kinds.add("estimator")
    signature = inspect.signature(cls.__init__)
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    params = None if has_kwargs else frozenset(signature.parameters) - {"self"}
    return EstimatorInfo(path, frozenset(kinds), params)


@cache
def _module_file(module: str) -> Path | None:
    """The source file of `module`, found without importing anything."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is executed
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = spec.origin
        return Path(origin) if origin and origin.endswith(".py") else None
    for location in spec.submodule_search_locations or []:
        base = Path(location, *rest)
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
    return None


def _sibling_modules(module: str) -> list[str]:
    parent = module.rpartition(".")[0]
    package = _module_file(parent) if parent else None
    if package is None or package.name != "__init__.py":
        return []
    return [
        f"{parent}.{p.stem}"
        for p in package.parent.iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())
    ]


@cache
def _tree(file: Path) -> ast.Module | None:
    try:
        return ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return None


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module statements, including those inside top-level if/try blocks."""
    found: list[ast.stmt] = []
    for stmt in body:
        found.append(stmt)
        if isinstance(stmt, ast.If | ast.Try):
            found += _top_level(stmt.body) + _top_level(stmt.orelse)
    return found


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


class _Source:
    """Static look-ups in module sources."""

    def find(self, module: str, name: str, depth: int) -> tuple[str, ast.ClassDef] | None:
        """The module defining class `name` as seen from `module`, and its definition."""
        file = _module_file(module)
        tree = _tree(file) if file else None
        if file is None or tree is None or depth > _MAX_DEPTH:
            return None
        is_package = file.name == "__init__.py"
        for stmt in _top_level(tree.body):
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                return module, stmt
            if isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    if (alias.asname or alias.name) == name:
                        source = _absolute(module, is_package, stmt.level, stmt.module)
                        return self.find(source, alias.name, depth + 1)
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == name
                and isinstance(stmt.value, ast.Name)
            ):
                return self.find(module, stmt.value.id, depth + 1)
        return None

    def dynamic(self, module: str, name: str) -> bool:
        """Whether the module may define `name` in a way its source does not show."""
        file = _module_file(module)
        tree = _tree(file) if file else None
        if tree is None:
            return True
        for stmt in _top_level(tree.body):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
            if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
                return True
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
                return True
        return False

    def names(self, module: str) -> list[str]:
        """Class-like names a module defines or re-exports (for "did you mean")."""
        file = _module_file(module)
        tree = _tree(file) if file else None
        if tree is None:
            return []
        names: list[str] = []
        for stmt in _top_level(tree.body):
            if isinstance(stmt, ast.ClassDef):
                names.append(stmt.name)
            elif isinstance(stmt, ast.ImportFrom):
                names += [a.asname or a.name for a in stmt.names]
        return [n for n in names if n[:1].isupper()]

    def describe(self, module: str, cls: ast.ClassDef) -> tuple[set[str], frozenset[str] | None]:
        """Kinds from the class hierarchy, and the constructor parameters."""
        kinds: set[str] = set()
        params: frozenset[str] | None = None
        init_found = False
        pending = [(module, cls, 0)]
        seen: set[tuple[str, str]] = set()
        while pending:
            where, node, depth = pending.pop(0)
            qualified = f"{where}.{node.name}"
            if (where, node.name) in seen or depth > _MAX_DEPTH:
                continue
            seen.add((where, node.name))
            if qualified in _MARKERS:
                kinds.add(_MARKERS[qualified])
            kinds |= _declared_type(node)
            init = _init(node)
            if init is not None and not init_found:
                init_found, params = True, _parameters(init)
            for base in node.bases:
                if isinstance(base, ast.Name):
                    parent = self.find(where, base.id, 0)
                    if parent is not None:
                        pending.append((parent[0], parent[1], depth + 1))
        return kinds, params if init_found else frozenset()


def _declared_type(node: ast.ClassDef) -> set[str]:
    """Old-style `_estimator_type = "classifier"` class attributes."""
    for stmt in node.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_estimator_type" for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant)
            and stmt.value.value in ("classifier", "regressor")
        ):
            return {str(stmt.value.value)}
    return set()


def _init(node: ast.ClassDef) -> ast.FunctionDef | None:
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
            return stmt
    return None


def _parameters(init: ast.FunctionDef) -> frozenset[str] | None:
    if init.args.kwarg is not None:
        return None
    positional = [*init.args.posonlyargs, *init.args.args][1:]  # drop `self`
    return frozenset(a.arg for a in [*positional, *init.args.kwonlyargs])


def find_class(module: str, name: str) -> tuple[str, ast.ClassDef] | None:
    """The module defining class `name` as seen from `module`, and its definition (source
    only, nothing is imported)."""
    return _Source().find(module, name, 0)


def module_tree(module: str) -> ast.Module | None:
    """The parsed source of `module`, found without importing it."""
    file = _module_file(module)
    return _tree(file) if file else None


def module_is_package(module: str) -> bool:
    file = _module_file(module)
    return file is not None and file.name == "__init__.py"


absolute_module = _absolute  # `from .x import y` in `module` -> the absolute module name


def suggest_class(path: str) -> str:
    """'; did you mean …' for a class name that a module does not define."""
    module, _, name = path.rpartition(".")
    return did_you_mean(name, _Source().names(module))
