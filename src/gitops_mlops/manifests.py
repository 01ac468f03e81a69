"""Pin an image in GitOps manifests, changing only the bytes of the values that change.

YAML libraries that load and dump lose comments, quoting, flow style and key order, and turn
`1.20` or `on` into other types. So we parse only to find where a value is (the pure-Python
parser gives character offsets) and splice the new text in: everything else stays byte for
byte. Every target is resolved before any file is written; a target that does not resolve
is an error, and applying the same update twice changes nothing.

The kinds of target are one registry, `UPDATERS`: adding a kind is one entry here (its spec
key, description and function), the same key in the schema's `target` definition, and a
before/after pair in tests/manifests/; tests/unit/test_manifests.py walks every entry and
checks that the schema agrees. See docs/architecture.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import yaml

from gitops_mlops import guarded_yaml
from gitops_mlops.errors import MlopsError
from gitops_mlops.guarded_yaml import CoreLoader
from gitops_mlops.spec.model import Target, Value

# Manifests are other people's files and may be larger than a spec (a Helm values file, a
# bundle of resources), but still guarded against alias bombs and deep nesting.
MANIFEST_LIMITS = guarded_yaml.Limits(max_bytes=8 * 1024 * 1024, max_nodes=1_000_000)
_WORKLOAD_POD_SPECS = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class ManifestError(MlopsError):
    """A target that cannot be updated; nothing has been written."""


@dataclass(frozen=True)
class Image:
    repository: str  # registry/name, no tag or digest
    digest: str  # sha256:<64 hex>
    tag: str  # the model version

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    def value(self, kind: Value) -> str:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "tag": self.tag,
            "repository": self.repository,
        }[kind]


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def plain_is_safe(value: str) -> bool:
    """Whether `value` can be written unquoted and still read back as the same string.

    Checked under YAML 1.1 (PyYAML; `yes`, `on`, `0x1f`) and 1.2 (go-yaml in kubectl and
    kustomize; `1e3`): `1.20`, `yes`, `on`, `0x1f`, `1e3` all need quotes.
    """
    if not value or value != value.strip():
        return False
    try:
        same_in_1_1 = yaml.safe_load(value) == value
        same_in_1_2 = yaml.load(value, Loader=CoreLoader) == value  # noqa: S506 - a safe loader
        return same_in_1_1 and same_in_1_2 and yaml.safe_dump(value).startswith(value)
    except yaml.YAMLError:
        return False


def _render(node: yaml.ScalarNode, value: str) -> str:
    """`value` written in the style of the scalar it replaces."""
    style = node.style
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value)
    if style in ("|", ">"):
        raise ManifestError("block scalars (| or >) cannot be pinned; write the value on one line")
    return value if plain_is_safe(value) else json.dumps(value)


def _scalar_value(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if _scalar_value(key_node) == key:
            return key_node, value_node
    return None


def _set(text: str, node: yaml.Node, value: str, edits: list[_Edit]) -> None:
    if not isinstance(node, yaml.ScalarNode):
        kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
        raise ManifestError(f"expected a single value, found a {kind}; point at a scalar")
    if node.value == value and node.tag == "tag:yaml.org,2002:str":
        return  # already pinned: running twice changes nothing
    start, end = node.start_mark.index, node.end_mark.index
    rendered = _render(node, value)
    if start == end:  # an empty value (`digest:`) needs the space a value follows
        rendered = " " + rendered if not text[start - 1 : start].isspace() else rendered
    edits.append(_Edit(start, end, rendered))


def _put(text: str, mapping: yaml.MappingNode, key: str, value: str, edits: list[_Edit]) -> None:
    """Set `key` in `mapping`, adding it after the last entry when it is missing."""
    found = _get(mapping, key)
    if found is not None:
        _set(text, found[1], value, edits)
        return
    rendered = value if plain_is_safe(value) else json.dumps(value)
    last_value = mapping.value[-1][1]
    if mapping.flow_style:
        edits.append(
            _Edit(last_value.end_mark.index, last_value.end_mark.index, f", {key}: {rendered}")
        )
        return
    indent = mapping.value[0][0].start_mark.column
    end = last_value.end_mark
    at = end.index - 1 if end.column == 0 else end.index
    newline = text.find("\n", at)
    at = len(text) if newline < 0 else newline
    crlf = text[at - 1 : at] == "\r" if newline >= 0 else "\r\n" in text
    at -= 1 if newline >= 0 and crlf else 0
    # The new line ends like the file's lines do (CRLF files stay CRLF).
    edits.append(_Edit(at, at, ("\r\n" if crlf else "\n") + " " * indent + f"{key}: {rendered}"))


def _documents(text: str, file: str) -> list[yaml.Node]:
    try:
        # The pure-Python loader: its marks count characters, which splicing needs.
        return guarded_yaml.compose(text, yaml.SafeLoader, multi=True, limits=MANIFEST_LIMITS)
    except guarded_yaml.YamlError as err:
        raise ManifestError(f"{err.located(file)} (reading a GitOps manifest)") from None


def _walk(node: yaml.Node, path: list[str]) -> yaml.Node | None:
    for part in path:
        if isinstance(node, yaml.SequenceNode) and part.isdigit():
            index = int(part)
            if index >= len(node.value):
                return None
            node = node.value[index]
            continue
        found = _get(node, part)
        if found is None:
            return None
        node = found[1]
    return node


def _named(sequence: yaml.Node | None, name: str) -> Iterator[yaml.MappingNode]:
    """The mappings of a list whose `name:` is `name` (images entries, containers)."""
    if not isinstance(sequence, yaml.SequenceNode):
        return
    for item in sequence.value:
        found = _get(item, "name")
        if isinstance(item, yaml.MappingNode) and found and _scalar_value(found[1]) == name:
            yield item


def _kustomize(
    text: str, docs: list[yaml.Node], target: Target, image: Image, edits: list[_Edit]
) -> None:
    for doc in docs:
        for entry in _named(_walk(doc, ["images"]), target.selector):
            _put(text, entry, "newName", image.repository, edits)
            if _get(entry, "newTag") is not None:
                _put(text, entry, "newTag", image.tag, edits)
            _put(text, entry, "digest", image.digest, edits)
            return
    raise ManifestError(
        f"{target.file}: no `images:` entry named {target.selector!r}; add "
        f"`images: [{{name: {target.selector}}}]` to the kustomization"
    )


def _yaml_path(
    text: str, docs: list[yaml.Node], target: Target, image: Image, edits: list[_Edit]
) -> None:
    found = [n for n in (_walk(d, target.selector.split(".")) for d in docs) if n is not None]
    if not found:
        raise ManifestError(
            f"{target.file}: {target.selector} does not exist; add it with a placeholder value"
        )
    for node in found:
        _set(text, node, image.value(written_value(target)), edits)


def written_value(target: Target) -> Value:
    """What a yaml_path target writes: its `value`, else guessed from the path's last part
    (`digest`, `tag`, `repository`), else the full reference."""
    if target.value is not None:
        return target.value
    guesses: dict[str, Value] = {"digest": "digest", "tag": "tag", "repository": "repository"}
    return guesses.get(target.selector.rpartition(".")[2], "reference")


def _pod_specs(doc: yaml.Node) -> list[yaml.Node]:
    kind_node = _walk(doc, ["kind"])
    kind = _scalar_value(kind_node) if kind_node is not None else None
    path = _WORKLOAD_POD_SPECS.get(kind or "", ("spec", "template", "spec"))
    spec = _walk(doc, list(path))
    return [spec] if spec is not None else []


def _container(
    text: str, docs: list[yaml.Node], target: Target, image: Image, edits: list[_Edit]
) -> None:
    hits = 0
    for doc in docs:
        for pod in _pod_specs(doc):
            for field in ("containers", "initContainers"):
                for container in _named(_walk(pod, [field]), target.selector):
                    _put(text, container, "image", image.reference, edits)
                    hits += 1
    if hits == 0:
        raise ManifestError(f"{target.file}: no workload has a container named {target.selector!r}")


Apply = Callable[[str, list[yaml.Node], Target, Image, list[_Edit]], None]


@dataclass(frozen=True)
class Updater:
    """One kind of target: the spec key that selects it and how it pins an image."""

    key: str  # the target's key in mlops.yaml; its value is `Target.selector`
    description: str  # the schema's description of that key, word for word
    apply: Apply  # appends the edits that pin the image; ManifestError when nothing matches
    takes_value: bool = False  # whether the target's `value:` chooses what is written


UPDATERS: Mapping[str, Updater] = MappingProxyType(
    {
        updater.key: updater
        for updater in (
            Updater(
                "kustomize_image",
                "Name of the entry in the kustomization's images: list; its newName and digest "
                "(and newTag, when present) are set.",
                _kustomize,
            ),
            Updater(
                "yaml_path",
                "Dotted path of the value to set (list items by index), e.g. image.digest.",
                _yaml_path,
                takes_value=True,
            ),
            Updater(
                "container",
                "Name of the container in a Kubernetes workload whose image is set.",
                _container,
            ),
        )
    }
)


def in_style_of(text: str, original: str | None) -> str:
    """`text` (LF, no BOM) with the line endings and byte order mark of `original`, the file
    it replaces: rewriting a CRLF file must not change every line."""
    if original is None:
        return text
    if "\r\n" in original:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if original.startswith("\ufeff") and not text.startswith("\ufeff"):
        text = "\ufeff" + text
    return text


def check_repository(text: str, target: Target, image: Image) -> None:
    """Refuse a digest or tag pinned next to a repository name that is not the image's.

    A Helm-style `image: {repository: …, digest: …}` target that sets only `digest` would
    otherwise run the pushed image's digest under another repository's name (which pulls
    nothing, or another image). `text` is the file with every target applied, so a
    `value: repository` target anywhere in the environment settles it.
    """
    value = written_value(target) if target.kind == "yaml_path" else None
    if value not in ("digest", "tag"):
        return
    *parent_path, _ = target.selector.split(".")
    for doc in _documents(text, target.file):
        parent = _walk(doc, parent_path)
        if not isinstance(parent, yaml.MappingNode):
            continue
        named = _repository_named(parent)
        if named is None:
            continue
        shown, node, key = named
        if shown == image.repository or (
            key == "registry" and image.repository.startswith(shown + "/")
        ):
            continue
        where = f"{target.file}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        path = ".".join([*parent_path, key])
        fix = (
            f"add the target {{file: {target.file}, yaml_path: {path}, value: repository}} to "
            "this environment, so both are pinned"
        )
        if key == "registry" or _get(parent, "registry") is not None:
            fix = (
                f"the values beside it must name {image.repository} together: set them, or "
                f"drop `registry` and {fix}"
            )
        raise ManifestError(
            f"{where}: {path} names {shown!r}, but the image pushed is {image.repository}; "
            f"pinning its {value} at {target.selector} would run it under another "
            f"repository's name. To fix, {fix}"
        )


def _repository_named(mapping: yaml.MappingNode) -> tuple[str, yaml.Node, str] | None:
    """The image repository a mapping's `repository`/`registry`/`image` values name."""
    values = {
        key: found[1]
        for key in ("repository", "registry", "image")
        if (found := _get(mapping, key)) is not None and _scalar_value(found[1]) is not None
    }
    registry = _scalar_value(values["registry"]) if "registry" in values else None
    if "repository" in values:
        repository = str(_scalar_value(values["repository"]))
        shown = f"{registry}/{repository}" if registry else repository
        return shown, values["repository"], "repository"
    if "image" in values:
        reference = str(_scalar_value(values["image"])).partition("@")[0]
        name, _, tag = reference.rpartition(":")
        return (name if name and "/" not in tag else reference), values["image"], "image"
    if registry is not None:
        return registry, values["registry"], "registry"
    return None


def update(text: str, target: Target, image: Image) -> str:
    """`text` with the target's value pinned to `image`; unchanged bytes everywhere else."""
    docs = _documents(text, target.file)
    edits: list[_Edit] = []
    UPDATERS[target.kind].apply(text, docs, target, image, edits)
    # Splice from the end so earlier offsets stay valid; insertions at one spot keep their order.
    for _, edit in sorted(enumerate(edits), key=lambda e: (e[1].start, e[0]), reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text
