"""Readability floors checked on the source: function length, and no capability probing on the model's paths."""

import ast
import inspect
import textwrap
from pathlib import Path

import valley3
from valley3.models.omni import OmniModel

SRC = Path(valley3.__file__).parent
LONGEST = 90  # lines; STYLE.md: a function fits on a screen


def test_no_function_in_src_reaches_90_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= LONGEST:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions of 90+ lines: " + ", ".join(long)


def test_omni_model_paths_do_not_probe_capabilities():
    # The architecture is declared (`Decoder.owns_vision`), never discovered with hasattr/getattr.
    for name in ("forward", "embed", "generate", "prefill", "decode_step", "_decoder_inputs", "image_num_tokens",
                 "components"):
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(OmniModel, name))))
        calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert not {"hasattr", "getattr"} & set(calls), f"OmniModel.{name} probes capabilities: {calls}"
