"""Estimator parameter values checked against scikit-learn's own `_parameter_constraints`.

scikit-learn validates parameter values when `fit` starts, against a class attribute such as

    _parameter_constraints: dict = {
        **BaseForest._parameter_constraints,
        "max_depth": [Interval(Integral, 1, None, closed="left"), None],
        "criterion": [StrOptions({"gini", "entropy", "log_loss"})],
    }

Validation must not import scikit-learn, so this module reads that dictionary from the
source with `ast`, as `estimator.py` resolves the class, and evaluates the constraint forms
it knows on the spec's values (plain YAML values: None, bool, int, float, str, list, dict).

Understood: `Interval(Integral | Real | RealNotInt, left, right, closed=…)` (bounds that are
numbers, arithmetic on numbers, `np.inf`, `float("inf")`, `np.iinfo(np.int32|int64).max`),
`StrOptions(…)` and `Options(type, …)` over sets written as literals, `set(NAME)`,
`set(NAME.keys())` and unions of those (NAME a module-level literal, followed through
imports), `Hidden(…)`, `HasMethods(…)`, `MissingValues(…)`, `None`, `callable`, the strings
"array-like", "sparse matrix", "random_state", "boolean", "verbose", "cv_object" and "nan",
and instances of builtin types, `numbers.Integral`/`Real`, `collections.abc` mappings and
`np.ndarray`; `**Base._parameter_constraints` and the class body's `.pop(…)`,
`[key] = […]` and `.update({…})` edits.

Anything else (a set computed by a function call, an instance of a class we cannot see
through) makes that parameter *unknown*: it is not checked here, and `fit` still checks it.
A parameter is reported only when every one of its constraints is understood and none
accepts the value, so the check never refuses what scikit-learn would accept. A class body
that edits its constraints in a way we do not follow makes the whole class unknown.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from gitops_mlops.spec.estimator import absolute_module as _absolute
from gitops_mlops.spec.estimator import find_class, module_tree

_ATTRIBUTE = "_parameter_constraints"
_VALIDATION_MODULES = ("sklearn.utils._param_validation",)
_MAX_DEPTH = 25


class _Unknown(Exception):
    """A form this module does not evaluate: the parameter is left to `fit`."""


@dataclass(frozen=True)
class Constraint:
    """One accepted form of a parameter value, as scikit-learn describes it."""

    description: str
    accepts: Callable[[Any], bool]
    hidden: bool = False
    options: tuple[str, ...] = ()  # StrOptions: for "did you mean"


Constraints = dict[str, tuple[Constraint, ...] | None]  # None: present but not understood


@dataclass(frozen=True)
class Rejection:
    message: str  # "must be an int in the range [1, inf) or None"
    options: tuple[str, ...]  # valid strings, for "did you mean"


def check(estimator: str, name: str, value: Any) -> Rejection | None:
    """Why scikit-learn's constraints reject `value` for parameter `name`, or None."""
    table = _class_constraints(estimator)
    found = table.get(name) if table is not None else None
    if found is None or any(c.accepts(value) for c in found):
        return None
    shown = [c for c in found if not c.hidden] or list(found)
    words = [c.description for c in shown]
    text = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    options = tuple(o for c in found for o in c.options)
    return Rejection(f"must be {text}", options)


@cache
def _class_constraints(estimator: str) -> Constraints | None:
    module, _, name = estimator.rpartition(".")
    found = find_class(module, name)
    if found is None:
        return None
    try:
        return _Reader().constraints(found[0], found[1], 0)
    except _Unknown:
        return None


class _Reader:
    def constraints(self, module: str, cls: ast.ClassDef, depth: int) -> Constraints:
        """The class's `_parameter_constraints`, looked up along its method resolution order."""
        for where, klass in self.linearization(module, cls, depth):
            own = self.own(where, klass, depth)
            if own is not None:
                return own
        return {}

    def own(self, module: str, cls: ast.ClassDef, depth: int) -> Constraints | None:
        """The dictionary the class body itself defines (None when it defines none)."""
        table: Constraints | None = None
        for stmt in cls.body:
            if _assigns(stmt):
                value = stmt.value  # type: ignore[attr-defined]
                table = self.table(module, value, depth)
            elif _mentions(stmt):
                if table is None:
                    raise _Unknown  # an edit of an inherited dict: not followed
                self.edit(module, table, stmt)
        return table

    def linearization(
        self, module: str, cls: ast.ClassDef, depth: int
    ) -> list[tuple[str, ast.ClassDef]]:
        """Python's C3 method resolution order over the classes the source shows."""
        if depth > _MAX_DEPTH:
            raise _Unknown
        parents = [found for b in cls.bases if (found := self.base_class(module, b)) is not None]
        sequences = [self.linearization(m, c, depth + 1) for m, c in parents]
        sequences.append(list(parents))
        order: list[tuple[str, ast.ClassDef]] = [(module, cls)]
        while any(sequences):
            for sequence in sequences:
                if not sequence:
                    continue
                head = sequence[0]
                if not any(_key(head) in map(_key, s[1:]) for s in sequences):
                    break
            else:
                raise _Unknown  # no consistent order: Python would refuse the class too
            order.append(head)
            sequences = [[c for c in s if _key(c) != _key(head)] for s in sequences]
        return order

    def base_class(self, module: str, node: ast.expr) -> tuple[str, ast.ClassDef] | None:
        if isinstance(node, ast.Name):
            return find_class(module, node.id)
        return None  # `Generic[T]`, `module.Class`: not followed, as estimator.py does

    def table(self, module: str, node: ast.expr, depth: int) -> Constraints:
        if not isinstance(node, ast.Dict):
            raise _Unknown
        table: Constraints = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # **Base._parameter_constraints
                table.update(self.unpacked(module, value, depth))
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                table[key.value] = self.forms(module, value)
            else:
                raise _Unknown
        return table

    def unpacked(self, module: str, node: ast.expr, depth: int) -> Constraints:
        if not (
            isinstance(node, ast.Attribute)
            and node.attr == _ATTRIBUTE
            and isinstance(node.value, ast.Name)
        ):
            raise _Unknown
        parent = find_class(module, node.value.id)
        if parent is None:
            raise _Unknown
        return dict(self.constraints(parent[0], parent[1], depth + 1))

    def edit(self, module: str, table: Constraints, stmt: ast.stmt) -> None:
        """Follow `.pop("k")`, `for k in (...): .pop(k)`, `[k] = [...]`, `.update({...})`."""
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name):
            keys = _literal_strings(stmt.iter)
            if len(stmt.body) != 1 or stmt.orelse:
                raise _Unknown
            call = _pop_call(stmt.body[0])
            if call is None or not _is_name(call.args[0], stmt.target.id):
                raise _Unknown
            for key in keys:
                table.pop(key, None)
            return
        call = _pop_call(stmt)
        if call is not None and isinstance(call.args[0], ast.Constant):
            table.pop(str(call.args[0].value), None)
            return
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Subscript)
            and _is_name(stmt.targets[0].value, _ATTRIBUTE)
            and isinstance(stmt.targets[0].slice, ast.Constant)
        ):
            table[str(stmt.targets[0].slice.value)] = self.forms(module, stmt.value)
            return
        appended = _appended(stmt)
        if appended is not None:
            key, form = appended
            if key not in table:
                raise _Unknown
            before, added = table[key], self.forms(module, ast.List(elts=[form]))
            table[key] = None if before is None or added is None else (*before, *added)
            return
        update = _method_call(stmt, "update")
        if update is not None and len(update.args) == 1:
            table.update(self.table(module, update.args[0], _MAX_DEPTH))
            return
        raise _Unknown

    def forms(self, module: str, node: ast.expr) -> tuple[Constraint, ...] | None:
        """A parameter's list of constraints; None when one of them is not understood."""
        if not isinstance(node, ast.List):
            return None  # "no_validation", or a list built some other way
        try:
            return tuple(_Forms(module).constraint(element) for element in node.elts)
        except _Unknown:
            return None


def _key(entry: tuple[str, ast.ClassDef]) -> tuple[str, str]:
    return entry[0], entry[1].name


def _assigns(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.AnnAssign):
        return _is_name(stmt.target, _ATTRIBUTE) and stmt.value is not None
    return (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and _is_name(stmt.targets[0], _ATTRIBUTE)
    )


def _mentions(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False  # a method reads `self._parameter_constraints`, never the bare name
    return any(_is_name(node, _ATTRIBUTE) for node in ast.walk(stmt))


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _method_call(stmt: ast.stmt, method: str) -> ast.Call | None:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    func = stmt.value.func
    if isinstance(func, ast.Attribute) and func.attr == method and _is_name(func.value, _ATTRIBUTE):
        return stmt.value
    return None


def _appended(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """`_parameter_constraints["key"].append(form)`: the key and the form."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call, func = stmt.value, stmt.value.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "append"
        and isinstance(func.value, ast.Subscript)
        and _is_name(func.value.value, _ATTRIBUTE)
        and isinstance(func.value.slice, ast.Constant)
        and len(call.args) == 1
    ):
        return str(func.value.slice.value), call.args[0]
    return None


def _pop_call(stmt: ast.stmt) -> ast.Call | None:
    call = _method_call(stmt, "pop")
    return call if call is not None and len(call.args) == 1 and not call.keywords else None


def _literal_strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Tuple | ast.List | ast.Set) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    raise _Unknown


# --- the constraint forms -------------------------------------------------------------

_NUMBER = (int, float)  # YAML numbers; bool is an int, as it is for numbers.Integral


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # isinstance(True, numbers.Integral) is True in Python


def _is_real(value: Any) -> bool:
    return isinstance(value, _NUMBER)


def _is_real_not_int(value: Any) -> bool:
    return isinstance(value, float)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _array_like(value: Any) -> bool:
    # scikit-learn: has __len__ (or shape or __array__) and numpy does not call it a scalar.
    return isinstance(value, list | dict)


_INTERVAL_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "Integral": ("an int", _is_int),
    "Real": ("a float", _is_real),
    "RealNotInt": ("a float", _is_real_not_int),
    "real_not_int": ("a float", _is_real_not_int),
}
# Instances of these types, as isinstance answers for YAML values.
_INSTANCE_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("an instance of 'int'", lambda v: isinstance(v, int)),
    "float": ("an instance of 'float'", lambda v: isinstance(v, float)),
    "bool": ("an instance of 'bool'", lambda v: isinstance(v, bool)),
    "str": ("an instance of 'str'", lambda v: isinstance(v, str)),
    "dict": ("an instance of 'dict'", lambda v: isinstance(v, dict)),
    "list": ("an instance of 'list'", lambda v: isinstance(v, list)),
    "tuple": ("an instance of 'tuple'", lambda v: False),  # YAML gives lists
    "Integral": ("an instance of 'int'", _is_int),
    "Real": ("an instance of 'float'", _is_real),
    "RealNotInt": ("an instance of 'float'", _is_real_not_int),
    "Mapping": ("an instance of 'collections.abc.Mapping'", lambda v: isinstance(v, dict)),
    "MutableMapping": (
        "an instance of 'collections.abc.MutableMapping'",
        lambda v: isinstance(v, dict),
    ),
    "ndarray": ("an instance of 'numpy.ndarray'", lambda v: False),
}
# Where a type name must come from for the entry above to apply.
_TYPE_HOMES = {
    "Integral": ("numbers",),
    "Real": ("numbers",),
    "RealNotInt": _VALIDATION_MODULES,
    "Mapping": ("collections.abc", "typing"),
    "MutableMapping": ("collections.abc", "typing"),
    "ndarray": ("numpy",),
}
_STRING_FORMS: dict[str, Constraint] = {
    "array-like": Constraint("an array-like", _array_like),
    "sparse matrix": Constraint("a sparse array or matrix", lambda v: False),
    "random_state": Constraint(
        "an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState'"
        " or None",
        lambda v: v is None or (_is_int(v) and 0 <= v <= 2**32 - 1),
    ),
    "boolean": Constraint(
        "an instance of 'bool' or an instance of 'numpy.bool'", lambda v: isinstance(v, bool)
    ),
    "verbose": Constraint(
        "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
        lambda v: _is_int(v) and v >= 0,
    ),
    "cv_object": Constraint(
        "an int in the range [2, inf), an object implementing 'split' and 'get_n_splits', "
        "an iterable or None",
        lambda v: v is None or isinstance(v, list | dict) or (_is_int(v) and v >= 2),
    ),
    "nan": Constraint("numpy.nan", _is_nan),
}
_SPECIAL_BOUNDS = {
    "np.inf": math.inf,
    "numpy.inf": math.inf,
    "float('inf')": math.inf,
    "np.iinfo(np.int32).max": 2**31 - 1,
    "np.iinfo(np.int64).max": 2**63 - 1,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


class _Forms:
    """Evaluates constraint expressions written in one module."""

    def __init__(self, module: str) -> None:
        self.module = module

    def constraint(self, node: ast.expr) -> Constraint:
        if isinstance(node, ast.Constant):
            if node.value is None:
                return Constraint("None", lambda v: v is None)
            if isinstance(node.value, str) and node.value in _STRING_FORMS:
                return _STRING_FORMS[node.value]
            raise _Unknown
        if _is_name(node, "callable"):
            return Constraint("a callable", lambda v: False)  # YAML holds no callables
        if isinstance(node, ast.Name | ast.Attribute):
            return self.instance_of(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _Unknown

    def instance_of(self, node: ast.Name | ast.Attribute) -> Constraint:
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name in _INSTANCE_TYPES and self.comes_from(node, name):
            description, accepts = _INSTANCE_TYPES[name]
            return Constraint(description, accepts)
        origin = _import_origin(self.module, name) if isinstance(node, ast.Name) else None
        if origin is None and isinstance(node, ast.Name) and find_class(self.module, name):
            origin = self.module  # defined in this module
        if origin is not None and (origin == "sklearn" or origin.startswith("sklearn.")):
            # A scikit-learn class (a kernel, a loss, a tree criterion): no YAML value is an
            # instance of one (the walk over every estimator checks this against isinstance).
            return Constraint(f"an instance of '{origin}.{name}'", lambda v: False)
        raise _Unknown  # a class whose instances we cannot rule out

    def comes_from(self, node: ast.Name | ast.Attribute, name: str) -> bool:
        homes = _TYPE_HOMES.get(name)
        if homes is None:
            return isinstance(node, ast.Name)  # a builtin: int, str, dict, ...
        if isinstance(node, ast.Attribute):
            prefix = ast.unparse(node.value)
            return prefix in ("np", "numpy", "numbers", "collections.abc", "typing") and (
                (prefix in ("np", "numpy") and "numpy" in homes) or prefix in homes
            )
        return _import_origin(self.module, name) in homes

    def call(self, node: ast.Call) -> Constraint:
        if ast.unparse(node) in ("type(np.nan)", "type(numpy.nan)"):
            return Constraint("an instance of 'float'", lambda v: isinstance(v, float))
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name is None or _import_origin(self.module, name) not in _VALIDATION_MODULES:
            raise _Unknown
        args: dict[int | str | None, ast.expr] = dict(enumerate(node.args))
        args.update({k.arg: k.value for k in node.keywords})
        if name == "Hidden" and 0 in args:
            inner = self.constraint(args[0])
            return Constraint(inner.description, inner.accepts, True, inner.options)
        if name == "Interval":
            return self.interval(args)
        if name == "StrOptions":
            return _options("str", lambda v: isinstance(v, str), self.strings(args.get(0)))
        first = args.get(0)
        if name == "Options" and isinstance(first, ast.Name | ast.Attribute):
            kind = self.instance_of(first)
            values = self.values(args.get(1))
            return _options(kind.description.removeprefix("an instance of "), kind.accepts, values)
        if name == "HasMethods":
            return self.has_methods(args.get(0))
        if name == "MissingValues":
            numeric_only = args.get("numeric_only", args.get(0))
            only = isinstance(numeric_only, ast.Constant) and numeric_only.value is True
            return _missing_values(only)
        raise _Unknown

    def interval(self, args: dict[int | str | None, ast.expr]) -> Constraint:
        kind = args.get(0, args.get("type"))
        left, right = args.get(1, args.get("left")), args.get(2, args.get("right"))
        closed_node = args.get("closed", args.get(3))
        if not (isinstance(closed_node, ast.Constant) and isinstance(kind, ast.AST)):
            raise _Unknown
        key = (
            kind.id
            if isinstance(kind, ast.Name)
            else kind.attr
            if isinstance(kind, ast.Attribute) and ast.unparse(kind.value) == "numbers"
            else getattr(kind, "value", None)
        )
        if key not in _INTERVAL_TYPES or left is None or right is None:
            raise _Unknown
        words, is_type = _INTERVAL_TYPES[str(key)]
        low, high, closed = _bound(left), _bound(right), str(closed_node.value)
        if closed not in ("left", "right", "both", "neither"):
            raise _Unknown

        def accepts(value: Any) -> bool:
            if not is_type(value) or _is_nan(value):
                return False
            lo = -math.inf if low is None else low
            hi = math.inf if high is None else high
            above = value >= lo if closed in ("left", "both") else value > lo
            below = value <= hi if closed in ("right", "both") else value < hi
            return bool(above and below)

        integral = key == "Integral"
        shown_low = "-inf" if low is None else (low if integral else float(low))
        shown_high = "inf" if high is None else (high if integral else float(high))
        brackets = ("[" if closed in ("left", "both") else "(") + (
            "]" if closed in ("right", "both") else ")"
        )
        description = f"{words} in the range {brackets[0]}{shown_low}, {shown_high}{brackets[1]}"
        return Constraint(description, accepts)

    def has_methods(self, node: ast.expr | None) -> Constraint:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            methods = [node.value]
        elif node is not None:
            methods = _literal_strings(node)
        else:
            raise _Unknown
        listed = (
            repr(methods[0])
            if len(methods) == 1
            else f"{', '.join(repr(m) for m in methods[:-1])} and {methods[-1]!r}"
        )
        return Constraint(
            f"an object implementing {listed}",
            lambda v: all(callable(getattr(v, m, None)) for m in methods),
        )

    def strings(self, node: ast.expr | None) -> frozenset[str]:
        values = self.values(node)
        if not all(isinstance(v, str) for v in values):
            raise _Unknown
        return frozenset(str(v) for v in values)

    def values(self, node: ast.expr | None) -> frozenset[Any]:
        """A set expression: literal, set(NAME), set(NAME.keys()), unions of these."""
        if node is None:
            raise _Unknown
        if isinstance(node, ast.Set | ast.List | ast.Tuple):
            return frozenset(_constant(e) for e in node.elts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.values(node.left) | self.values(node.right)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("set", "frozenset")
            and len(node.args) == 1
            and not node.keywords
        ):
            return self.collection(node.args[0])
        if isinstance(node, ast.Name):
            return self.collection(node)
        raise _Unknown

    def collection(self, node: ast.expr) -> frozenset[Any]:
        """The members of NAME or NAME.keys() for a module-level literal NAME."""
        keys = False
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "keys"
            and not node.args
        ):
            node, keys = node.func.value, True
        if isinstance(node, ast.Set | ast.List | ast.Tuple):
            return self.values(node)
        if not isinstance(node, ast.Name):
            raise _Unknown
        module, value = _module_value(self.module, node.id, 0)
        if isinstance(value, ast.Call) and _is_name(value.func, "dict") and not value.args:
            if not keys:
                raise _Unknown
            return frozenset(k.arg for k in value.keywords if k.arg is not None)
        if isinstance(value, ast.Dict):
            if not keys and value.keys:
                raise _Unknown  # iterating a dict gives its keys; say so explicitly
            return frozenset(_constant(k) for k in value.keys if k is not None)
        if keys:
            raise _Unknown
        return _Forms(module).values(value)


def _options(kind: str, is_type: Callable[[Any], bool], values: frozenset[Any]) -> Constraint:
    shown = ", ".join(repr(v) for v in sorted(values, key=repr))
    strings = tuple(sorted(v for v in values if isinstance(v, str)))
    return Constraint(
        f"a {kind.strip(chr(39))} among {{{shown}}}",
        lambda v: is_type(v) and v in values,
        options=strings,
    )


def _missing_values(numeric_only: bool) -> Constraint:
    words = "an instance of 'int', a float in the range [-inf, inf], numpy.nan, pandas.NA"
    words += "" if numeric_only else ", an instance of 'str' or None"

    def accepts(value: Any) -> bool:
        if isinstance(value, _NUMBER):
            return True
        return not numeric_only and (value is None or isinstance(value, str))

    return Constraint(words, accepts)


def _constant(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    return _bound(node)  # np.inf and arithmetic on numbers


def _bound(node: ast.expr) -> float | int | None:
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, int | float)
    ):
        if isinstance(node.value, bool):
            raise _Unknown
        return node.value
    text = ast.unparse(node).replace('"', "'")
    if text in _SPECIAL_BOUNDS:
        return _SPECIAL_BOUNDS[text]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _bound(node.operand)
        if inner is None:
            raise _Unknown
        return -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _bound(node.left), _bound(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and abs(right) > 64):
            raise _Unknown
        result: float | int = _ARITHMETIC[type(node.op)](left, right)
        return result
    raise _Unknown


# --- where names come from --------------------------------------------------------------


def _import_origin(module: str, name: str) -> str | None:
    """The module `name` is imported from in `module` (`from X import name`), if any."""
    tree = module_tree(module)
    if tree is None:
        return None
    is_package = _is_package(module)
    for stmt in _statements(tree):
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return _absolute(module, is_package, stmt.level, stmt.module)
    return None


def _module_value(module: str, name: str, depth: int) -> tuple[str, ast.expr]:
    """The literal a module-level NAME is bound to (through imports), and its module."""
    tree = module_tree(module)
    if tree is None or depth > _MAX_DEPTH:
        raise _Unknown
    bound: list[ast.expr] = []
    for stmt in _statements(tree):
        value = _binding(stmt, name)
        if value is not None:
            bound.append(value)
        elif isinstance(stmt, ast.AugAssign) and _is_name(stmt.target, name):
            raise _Unknown  # changed after it was written
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, _is_package(module), stmt.level, stmt.module)
                    return _module_value(source, alias.name, depth + 1)
    if len(bound) != 1:
        raise _Unknown  # not bound, or bound twice: we cannot tell which one holds
    return module, bound[0]


def _binding(stmt: ast.stmt, name: str) -> ast.expr | None:
    if isinstance(stmt, ast.Assign) and any(_is_name(t, name) for t in stmt.targets):
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and _is_name(stmt.target, name):
        return stmt.value
    return None


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    for stmt in tree.body:
        yield stmt
        if isinstance(stmt, ast.If | ast.Try):
            yield from _statements(ast.Module(body=[*stmt.body, *stmt.orelse], type_ignores=[]))


def _is_package(module: str) -> bool:
    from gitops_mlops.spec.estimator import module_is_package

    return module_is_package(module)
