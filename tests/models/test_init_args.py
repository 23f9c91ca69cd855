"""Components record their constructor arguments through an explicit decorator, and imports have no side effects."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest
from torch import nn

import valley3.models
from valley3.models.init_args import describe, records_init_args
from valley3.models.vision.base import VisionEncoder


def _component_classes():
    for info in pkgutil.walk_packages(valley3.models.__path__, "valley3.models."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, nn.Module) and "__init__" in cls.__dict__:
                yield cls


def test_every_component_that_defines_init_records_it_explicitly():
    undecorated = [c.__qualname__ for c in _component_classes() if not getattr(c.__init__, "records_init_args", False)]
    assert not undecorated, f"decorate with @records_init_args: {undecorated}"


def test_an_undecorated_subclass_records_nothing_and_describe_says_so():
    @records_init_args
    class Base(nn.Module):
        def __init__(self, width: int = 2):
            super().__init__()

    class Child(Base):  # not decorated: must not pass off Base's arguments as its own
        def __init__(self, depth: int):
            super().__init__(width=depth)

    assert describe(Base(width=3))["init_args"] == {"width": 3}
    with pytest.raises(TypeError, match="records_init_args"):
        describe(Child(4))
    assert issubclass(VisionEncoder, nn.Module) and "__init_subclass__" not in VisionEncoder.__dict__


def test_importing_valley3_models_registers_no_attention_backend():
    code = ("import valley3.models, valley3.models.attention as a; from transformers import AttentionInterface as I; "
            "assert a.SDPA_VARLEN not in I._global_mapping; a.register_backends(); a.register_backends(); "
            "assert I._global_mapping[a.SDPA_VARLEN] is a.sdpa_varlen_attention")
    subprocess.run([sys.executable, "-c", code], check=True)
