"""notebooks/quickstart.ipynb runs top to bottom on CPU (demo data, a processed and a packed sample, the token
budget, a few training steps, generation, plots), and is committed without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks/quickstart.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_quickstart_notebook_runs(monkeypatch):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("VALLEY3_REPO", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    src = str(ROOT / "src")  # the kernel imports this checkout's valley3, as the tests do
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    # kernel "python3" is ipykernel's own spec: the interpreter running the tests
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "tokens trained on:" in outputs and "samples ->" in outputs
