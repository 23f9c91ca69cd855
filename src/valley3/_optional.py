"""The one import guard for optional heavy dependencies (decord, torchcodec, av, flash-attn, vLLM, ...)."""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType

logger = logging.getLogger(__name__)

# Why an optional package may fail to import, beyond not being installed: torchcodec raises RuntimeError
# when no FFmpeg shared library it was built against is found, and compiled extensions (decord,
# flash-attn) raise OSError on a missing or mismatched .so.
_IMPORT_FAILURES = (ImportError, OSError, RuntimeError)


@functools.cache
def optional_import(name: str) -> ModuleType | None:
    """Import an optional module once; return it, or None if it is missing or fails to load.

    The reason for a failed import is logged at debug level, so a missing package costs one line, not a
    traceback. Results are cached: call `optional_import.cache_clear()` after installing one in-process.

    Args:
        name: the module's import name, e.g. "decord", "torchcodec.decoders", "flash_attn".
    """
    try:
        return importlib.import_module(name)
    except _IMPORT_FAILURES as exc:
        logger.debug("optional module %s not available: %s", name, exc)
        return None


def is_available(name: str) -> bool:
    """Whether `optional_import(name)` finds a working module.

    Args:
        name: the module's import name.
    """
    return optional_import(name) is not None


def require(name: str, purpose: str, package: str | None = None) -> ModuleType:
    """Return an optional module, or raise ImportError saying what needs it and what to install.

    Args:
        name: the module's import name.
        purpose: what the caller wanted it for, e.g. "decoding video with backend='decord'".
        package: the pip name, when it differs from the import name (e.g. "flash-attn").
    """
    module = optional_import(name)
    if module is None:
        raise ImportError(f"{purpose} needs the optional package {package or name!r}: pip install {package or name}")
    return module


__all__ = ["is_available", "optional_import", "require"]
