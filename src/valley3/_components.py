"""The swappable components `valley3 --help` lists, read from the sources' syntax trees: no torch import."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # the valley3 package

# Families a researcher swaps with one config key: the package a config names them from, and their base class.
FAMILIES = {
    "stages (model: class_path)": ("valley3.stages", "OmniStage"),
    "data (data: class_path)": ("valley3.data.datamodules", "BaseDataModule"),
    "benchmarks (data.benchmarks of valley3.eval.BenchmarkDataModule)": ("valley3.eval.benchmarks", "Benchmark"),
    "vision encoders (--model.model.vision)": ("valley3.models.vision", "VisionEncoder"),
    "audio encoders (--model.model.audio)": ("valley3.models.audio", "AudioEncoder"),
    "connectors (--model.model.vision_connector / audio_connector)": ("valley3.models.connectors", "Connector"),
    "decoders (--model.model.decoder)": ("valley3.models.decoders", "Decoder"),
}


@dataclass
class _Class:
    module: str
    name: str
    bases: list[str]  # qualified names, as far as the module's imports tell
    doc: str
    abstract: set[str]  # methods it declares @abstractmethod
    methods: set[str]
    subclasses: list[str] = field(default_factory=list)


@dataclass
class _Module:
    classes: dict[str, ast.ClassDef]
    imports: dict[str, str]  # local name -> "module.name" (from-imports of valley3 modules)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, _Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        imports = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in tree.body
                   if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("valley3")
                   for alias in node.names}
        out[_module_name(path)] = _Module(classes, imports)
    return out


def _resolve(module: str, name: str, depth: int = 0) -> str:
    """Where `name`, as seen from `module`, is defined: follows re-exports through package `__init__`s."""
    found = _modules().get(module)
    if found is None or name in found.classes or depth > 10:
        return f"{module}.{name}"
    target = found.imports.get(name)
    if target is None:
        return f"{module}.{name}"
    source, _, real = target.rpartition(".")
    return _resolve(source, real, depth + 1)


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


@cache
def _classes() -> dict[str, _Class]:
    classes: dict[str, _Class] = {}
    for module, found in _modules().items():
        for name, node in found.classes.items():
            bases = [_resolve(module, b) for b in map(_base_name, node.bases) if b]
            functions = [f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
            abstract = {f.name for f in functions if any(_base_name(d) == "abstractmethod" for d in f.decorator_list)}
            doc = (ast.get_docstring(node) or "").split("\n")[0]
            classes[f"{module}.{name}"] = _Class(module, name, bases, doc, abstract, {f.name for f in functions})
    for qualified, cls in classes.items():
        for base in cls.bases:
            if base in classes:
                classes[base].subclasses.append(qualified)
    return classes


def _is_abstract(qualified: str) -> bool:
    """Like `inspect.isabstract`: an abstract method some class on the way down declares and none defines."""
    classes = _classes()

    def missing(name: str) -> set[str]:
        cls = classes[name]
        inherited = set().union(*(missing(b) for b in cls.bases if b in classes))
        return cls.abstract | (inherited - cls.methods)

    return bool(missing(qualified))


def _public_path(qualified: str) -> str:
    """The shortest package path that exports the class (the one configs use)."""
    cls = _classes()[qualified]
    parts = cls.module.split(".")
    for end in range(2, len(parts) + 1):
        package = ".".join(parts[:end])
        if package in _modules() and _resolve(package, cls.name) == qualified:
            return f"{package}.{cls.name}"
    return qualified


def family(package: str, base: str) -> list[tuple[str, str]]:
    """(public path, first docstring line) of the base (unless abstract) and every subclass, depth first."""
    classes, root = _classes(), _resolve(package, base)
    found: list[tuple[str, str]] = []

    def walk(qualified: str) -> None:
        if not _is_abstract(qualified):
            found.append((_public_path(qualified), classes[qualified].doc))
        for sub in sorted(classes[qualified].subclasses):
            walk(sub)

    walk(root)
    return found


def components_help() -> str:
    """Every swappable component, by family, with the first line of its docstring."""
    lines = ["swappable components (point a config key's class_path at one):"]
    for title, (package, base) in FAMILIES.items():
        lines.append(f"  {title}:")
        lines += [f"    {path}  {doc}".rstrip() for path, doc in family(package, base)]
    return "\n".join(lines)
