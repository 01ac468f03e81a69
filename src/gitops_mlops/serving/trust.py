"""Which types a model file may build: exact types, never a whole package, never a function.

A skops file names every type it builds (`__module__` + `__class__` in its schema), and
loading builds them: it calls the type with arguments from the file, or `__new__` then
`__setstate__`. A name is trusted only when it is

- in REVIEWED_TYPES below, a table of classes each checked by hand;
- a scikit-learn estimator class: public, a subclass of BaseEstimator, defined in exactly the
  module the file names (the classes `model.estimator` may name, and the pipelines and
  transformers they are assembled from); their constructors and `__setstate__` only store
  parameters and fitted arrays;
- a class defined in a module of `model.allow_modules` (the user reviewed those classes),
  unless that module is in the standard library or a package whose types are trusted here
  name by name;
- a NumPy universal function, only where skops stores a function (`np.log1p` in a
  FunctionTransformer): a ufunc runs a compiled elementwise kernel, never Python code.

Everything else is refused before anything is built: Python functions (even in numpy, e.g.
`numpy.testing._private.utils.runstring`, which calls `exec`), bound methods, `operator` and
`functools.partial` objects, and any other class. Which of these a file names is read from its
schema here, independently of skops' own defaults; skops then checks the file again against
exactly the names accepted here.

Trust is separate from integrity: callers check the file's sha256 against its manifest
first, but a manifest next to the model can be rewritten with it.

This module runs inside the serving image: standard library, numpy, scikit-learn, skops only.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops.serving.errors import UntrustedModelError as UntrustedModelError

SCHEMA_LIMIT = 64 * 1024 * 1024  # bytes of schema.json; a model's is a few MB at most
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

REVIEWED_TYPES = frozenset(
    {
        # Python containers and scalars: built from JSON or from their items; the type is
        # called with no argument or with already-built items, which runs no user code.
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.object",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.OrderedDict",
        "collections.defaultdict",
        # NumPy arrays, dtypes and scalar types: arrays are read with
        # np.load(allow_pickle=False); dtypes and scalars are built from a number or a name.
        "numpy.bool",
        "numpy.bytes_",
        "numpy.clongdouble",
        "numpy.complex128",
        "numpy.complex64",
        "numpy.datetime64",
        "numpy.dtype",
        "numpy.float16",
        "numpy.float32",
        "numpy.float64",
        "numpy.int16",
        "numpy.int32",
        "numpy.int64",
        "numpy.int8",
        "numpy.longdouble",
        "numpy.longlong",
        "numpy.ma.MaskedArray",
        "numpy.ndarray",
        "numpy.object_",
        "numpy.str_",
        "numpy.timedelta64",
        "numpy.uint16",
        "numpy.uint32",
        "numpy.uint64",
        "numpy.uint8",
        "numpy.ulonglong",
        "numpy.void",
        # NumPy random state (random_state= of fitted estimators): a state vector of numbers.
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.mtrand.RandomState",
        # SciPy sparse matrices (one-hot output, sparse coefficients): read with
        # scipy.sparse.load_npz, which never unpickles.
        "scipy.sparse._bsr.bsr_array",
        "scipy.sparse._bsr.bsr_matrix",
        "scipy.sparse._coo.coo_array",
        "scipy.sparse._coo.coo_matrix",
        "scipy.sparse._csc.csc_array",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._dia.dia_array",
        "scipy.sparse._dia.dia_matrix",
        "scipy.sparse._dok.dok_array",
        "scipy.sparse._dok.dok_matrix",
        "scipy.sparse._lil.lil_array",
        "scipy.sparse._lil.lil_matrix",
        # Fitted trees (decision trees, forests, gradient boosting): node arrays and sizes.
        # Their predict indexes the node arrays: the sha256 check keeps them the trained ones.
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        # Losses and link functions held by gradient boosting, GLMs and SGD: plain objects
        # with a few numeric parameters.
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyExponentialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfGammaLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfPoissonLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyHalfTweedieLoss",
        "sklearn._loss._loss.CyHalfTweedieLossIdentity",
        "sklearn._loss._loss.CyHuberLoss",
        "sklearn._loss._loss.CyPinballLoss",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfTweedieLoss",
        "sklearn._loss.loss.HalfTweedieLossIdentity",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss",
        "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.linear_model._sgd_fast.ModifiedHuber",
        "sklearn.linear_model._sgd_fast.SquaredEpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.SquaredHinge",
        # Nearest neighbours: the search trees and the built-in distance metrics (numbers
        # only; PyFuncDistance, which calls a Python function, is deliberately absent).
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.BrayCurtisDistance64",
        "sklearn.metrics._dist_metrics.CanberraDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.HammingDistance64",
        "sklearn.metrics._dist_metrics.HaversineDistance64",
        "sklearn.metrics._dist_metrics.JaccardDistance64",
        "sklearn.metrics._dist_metrics.MahalanobisDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.SEuclideanDistance64",
        # Fitted parts of other estimator families: the MLP's optimiser state, Gaussian
        # process kernels, calibration maps, multi-class helpers, sklearn's dict with
        # attribute access. Each only stores numbers, arrays and other trusted objects.
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
        "sklearn.gaussian_process.kernels.CompoundKernel",
        "sklearn.gaussian_process.kernels.ConstantKernel",
        "sklearn.gaussian_process.kernels.DotProduct",
        "sklearn.gaussian_process.kernels.ExpSineSquared",
        "sklearn.gaussian_process.kernels.Exponentiation",
        "sklearn.gaussian_process.kernels.Matern",
        "sklearn.gaussian_process.kernels.Product",
        "sklearn.gaussian_process.kernels.RationalQuadratic",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.gaussian_process.kernels.Sum",
        "sklearn.gaussian_process.kernels.WhiteKernel",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.utils._bunch.Bunch",
    }
)

# The bit generators a numpy Generator may be rebuilt with; numpy.random names them by string.
_BIT_GENERATORS = frozenset(
    f"numpy.random.{name}" for name in ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
)
# Packages whose types are trusted only name by name (above), and the standard library:
# `model.allow_modules` never widens trust to them (subprocess.Popen is a class too).
_NEVER_ALLOWED = frozenset({"numpy", "scipy", "sklearn", "skops", "pandas", "gitops_mlops"})
# Parts of scikit-learn that hold test doubles and build helpers, not estimators.
_NOT_ESTIMATOR_MODULES = frozenset(
    {"tests", "externals", "_testing", "_mocking", "conftest", "estimator_checks", "experimental"}
)
# Names the audit checks that skops never asks trust for (JSON values, bit generator names).
_NOT_TYPES = frozenset({"JsonNode", "BitGenerator"})
# Loaders whose node builds a function or method rather than an instance of its type.
_CALLABLE_LOADERS = {
    "FunctionNode": "a function",
    "MethodNode": "a bound method",
    "PartialNode": "a functools.partial",
    "OperatorFuncNode": "an operator function",
}


@dataclass(frozen=True)
class Named:
    """One type a model file names, and the loader that would build it."""

    loader: str
    module: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


def read_schema(data: bytes, path: Path) -> Any:
    """The parsed schema.json of a skops file (`data`, read from `path`)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > SCHEMA_LIMIT:
                raise UntrustedModelError(
                    f"{path}: its schema is {info.file_size} bytes, over {SCHEMA_LIMIT}"
                )
            return json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError) as err:
        raise UntrustedModelError(f"{path}: not a skops model file ({err})") from None


def named_types(schema: Any) -> set[Named]:
    """Every type the schema names (iteratively: a hostile file may nest deeply)."""
    found: set[Named] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if module is not None or name is not None:
                found.add(Named(str(node.get("__loader__")), str(module), str(name)))
            if node.get("__loader__") == "RandomGeneratorNode":
                found.add(_bit_generator(node))
            stack.extend(node.values())
    return found


def _bit_generator(node: dict[str, Any]) -> Named:
    """The bit generator a Generator node builds: numpy names it by a string in its state."""
    try:
        state = node["content"]["bit_generator"]["content"]["bit_generator"]
        name = json.loads(state["content"])
    except (KeyError, TypeError, ValueError):
        name = None
    return Named("BitGenerator", "numpy.random", str(name))


def refusal(named: Named, allow_modules: Iterable[str] = ()) -> str | None:
    """Why `named` may not be built, or None when it may."""
    if named.loader == "JsonNode":
        return None  # built by json.loads from its content: the named type is never used
    if named.loader == "FunctionNode" and _is_ufunc(named):
        return None
    if named.loader in _CALLABLE_LOADERS:
        return _CALLABLE_LOADERS[named.loader]
    if named.loader == "BitGenerator":
        return None if named.path in _BIT_GENERATORS else "not a numpy bit generator"
    if named.path in REVIEWED_TYPES:
        return None
    if not all(_IDENTIFIER.match(part) for part in (*named.module.split("."), named.name)):
        return "not a valid type name"
    allowed = _allowed_root(named.module, allow_modules)
    if allowed is not None:
        found = _class_defined_in(named)
        return None if found is not None else "not a class defined there"
    if named.module == "sklearn" or named.module.startswith("sklearn."):
        return None if _is_estimator_class(named) else "not a scikit-learn estimator class"
    return "not a reviewed type"


def audit(data: bytes, path: Path, allow_modules: Iterable[str] = ()) -> list[str]:
    """The exact type names the skops file `data` builds, all trusted; else UntrustedModelError.

    `path` is where `data` was read, for messages.
    """
    allow = tuple(allow_modules)
    named = named_types(read_schema(data, path))
    refused = sorted(
        (item.path, why) for item in named if (why := refusal(item, allow)) is not None
    )
    if refused:
        listed = "; ".join(f"{name} ({why})" for name, why in refused)
        raise UntrustedModelError(
            f"{path}: refusing to load it: it would build types that are not trusted: "
            f"{listed}. A model may hold scikit-learn estimators, the reviewed numpy, scipy "
            "and scikit-learn types, and classes of the modules in model.allow_modules "
            "(see docs/architecture.md, Trust model)"
        )
    return sorted({item.path for item in named if item.loader not in _NOT_TYPES})


def _allowed_root(module: str, allow_modules: Iterable[str]) -> str | None:
    for allowed in allow_modules:
        root = allowed.split(".")[0]
        if root in _NEVER_ALLOWED or root in sys.stdlib_module_names:
            continue
        if module == allowed or module.startswith(allowed + "."):
            return allowed
    return None


def _resolve(named: Named) -> Any:
    try:
        return getattr(importlib.import_module(named.module), named.name, None)
    except Exception:  # a module that cannot be imported is not trusted
        return None


def _class_defined_in(named: Named) -> type | None:
    found = _resolve(named)
    exact = (
        inspect.isclass(found)
        and found.__module__ == named.module
        and found.__qualname__ == named.name
    )
    return found if exact else None


def _is_estimator_class(named: Named) -> bool:
    parts = named.module.split(".")
    if named.name.startswith("_") or _NOT_ESTIMATOR_MODULES.intersection(parts):
        return False
    from sklearn.base import BaseEstimator

    found = _class_defined_in(named)
    return found is not None and issubclass(found, BaseEstimator) and not inspect.isabstract(found)


def _is_ufunc(named: Named) -> bool:
    if named.module != "numpy" and not (
        named.module == "scipy.special" or named.module.startswith("scipy.special.")
    ):
        return False
    if not _IDENTIFIER.match(named.name):
        return False
    import numpy as np

    return isinstance(_resolve(named), np.ufunc)


def walk_reviewed() -> Iterator[tuple[str, Any]]:
    """Each entry of REVIEWED_TYPES with what it resolves to (for the test that walks it)."""
    for path in sorted(REVIEWED_TYPES):
        module, _, name = path.rpartition(".")
        yield path, _resolve(Named("ObjectNode", module, name))
