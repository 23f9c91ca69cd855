"""`--ckpt_path last`: the newest last.ckpt of a config's auto-numbered run folders, and the folder to go on in."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

_VERSION = re.compile(r"version_(\d+)$")
_LAST = re.compile(rf"^{ModelCheckpoint.CHECKPOINT_NAME_LAST}(-\d+)?{ModelCheckpoint.FILE_EXTENSION}$")


def resolve_last(config: Any, subcommand: str) -> None:
    """Turn `ckpt_path: last` in one subcommand's parsed config into the checkpoint it means.

    Lightning reads "last" as the last.ckpt in *this* run's checkpoint folder, which for a logger with automatic
    versions is a new, empty `version_N`: a resumed fit would silently start over. Here "last" is the newest
    last.ckpt under `<save_dir>/<name>/version_*/checkpoints/`, and a resumed `fit` logs and saves on in that
    same `version_N`. A ModelCheckpoint `dirpath` or a logger `version` fixes the folder; then Lightning's own
    reading applies. Finding nothing is a loud warning (set-and-forget `last` on a first run starts from scratch).
    """
    if config.get("ckpt_path") != "last":
        return
    trainer = config["trainer"]
    checkpoints = [cb for cb in (trainer.get("callbacks") or []) if _is_model_checkpoint(cb)]
    fixed = [Path(cb.init_args.dirpath) for cb in checkpoints if cb.get("init_args") and cb.init_args.get("dirpath")]
    logger = trainer.get("logger")
    if logger is False:
        folders = fixed or [Path(trainer.get("default_root_dir") or os.getcwd()) / "checkpoints"]
        return _keep_or_warn(config, folders, subcommand)
    first = logger[0] if isinstance(logger, list) else logger
    root, version = _logger_root(first, trainer)
    if not fixed and root is None:
        return  # a logger without a save_dir/name/version layout: Lightning's own reading of "last"
    if fixed or version is not None:
        return _keep_or_warn(config, fixed or [root / _version_dir(version) / "checkpoints"], subcommand)
    found = [(p.stat().st_mtime, p, int(m.group(1))) for run in root.glob("version_*")
             if (m := _VERSION.search(run.name)) for p in _lasts(run / "checkpoints")]
    if not found:
        return _nothing(config, f"{root}/version_*/checkpoints/", subcommand)
    _, path, number = max(found)
    config["ckpt_path"] = str(path)
    if subcommand == "fit" and (first is True or first is None):  # the default logger, spelled out with the version
        trainer["logger"] = _default_logger(root.parent, number)
    elif subcommand == "fit":
        first.init_args.version = number  # go on in the run's own folder: its logs and its last.ckpt
    rank_zero_info(f"--ckpt_path last: resuming from {path}")


def _is_model_checkpoint(callback: Any) -> bool:
    if isinstance(callback, ModelCheckpoint):
        return True
    class_path = callback.get("class_path") if hasattr(callback, "get") else None
    if not class_path:
        return False
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return isinstance(cls, type) and issubclass(cls, ModelCheckpoint)


def _logger_root(logger: Any, trainer: Any) -> tuple[Path | None, Any]:
    """(`<save_dir>/<name>`, fixed version or None) of a logger config; (None, None) when it has no such layout."""
    default_dir = Path(trainer.get("default_root_dir") or os.getcwd())
    if logger is True or logger is None:
        return default_dir / "lightning_logs", None
    args = logger.get("init_args") if hasattr(logger, "get") else None
    if args is None or "save_dir" not in args:
        return None, None
    name = args.get("name", "lightning_logs")
    return Path(args.save_dir or default_dir) / (name or ""), args.get("version")


def _version_dir(version: Any) -> str:
    return version if isinstance(version, str) else f"version_{version}"


def _lasts(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if _LAST.match(p.name)] if folder.is_dir() else []


def _keep_or_warn(config: Any, folders: list[Path], subcommand: str) -> None:
    if not any(_lasts(folder) for folder in folders):
        _nothing(config, ", ".join(f"{f}/" for f in folders), subcommand)


def _nothing(config: Any, where: str, subcommand: str) -> None:
    config["ckpt_path"] = None
    start = "trains from step 0" if subcommand == "fit" else "uses the config's own weights"
    rank_zero_warn(f"\n!!! --ckpt_path last: no last checkpoint under {where}; nothing is resumed, this {subcommand} "
                   f"{start}. (A ModelCheckpoint with save_last: true writes one.)")


def _default_logger(save_dir: Path, version: int) -> Any:
    """Lightning's default logger (TensorBoard when installed, else CSV) as a config, with a fixed version."""
    from importlib.util import find_spec

    from jsonargparse import Namespace

    tensorboard = find_spec("tensorboard") is not None or find_spec("tensorboardX") is not None
    cls = "TensorBoardLogger" if tensorboard else "CSVLogger"
    init = Namespace(save_dir=str(save_dir), name="lightning_logs", version=version)
    return Namespace(class_path=f"lightning.pytorch.loggers.{cls}", init_args=init)
