"""The private framework APIs valley3 relies on still exist in the installed versions, and nothing else uses any."""

import ast
from pathlib import Path

import valley3
from valley3 import compat

SRC = Path(valley3.__file__).parent


def test_private_framework_apis_resolve_on_installed_versions():
    compat.check()  # raises naming the missing symbol after an upgrade that moved it


def test_no_module_but_compat_reaches_into_private_framework_names():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            external = node.module not in (None, "__future__") and not node.module.startswith("valley3") if isinstance(node, ast.ImportFrom) else False
            if external:
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or any(part.startswith("_") for part in node.module.split(".")):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} from {node.module} import ...")
            if isinstance(node, ast.Attribute) and node.attr in {
                "_trainer", "_attn_implementation", "_from_config", "_no_split_modules", "_given_hyperparameters",
                "epoch_progress", "batch_progress",
            }:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
    assert not offenders, "private framework API used outside valley3/compat.py:\n" + "\n".join(offenders)
