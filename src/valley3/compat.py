"""Every private Lightning, torch and transformers API valley3 relies on, in one place, each behind one function.

`tests/test_compat.py` calls `check()`, so an upgrade that moves or renames one fails that test by name instead of
a run hours in. Imports are local: `valley3.models` uses the transformers and torch helpers and must not import
Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

# (module, attribute) of every private symbol imported below; `check` resolves them all.
PRIVATE_SYMBOLS = (
    ("lightning.pytorch.core.mixins.hparams_mixin", "_given_hyperparameters"),
    ("torch.distributed.checkpoint.state_dict_loader", "_load_state_dict_from_keys"),
    ("torch.distributed._composable", "checkpoint"),
    ("transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe", "_get_feat_extract_output_lengths"),
    ("transformers.initialization", "no_init_weights"),  # public name, undocumented module
)


def given_hyperparameters() -> dict[str, Any] | None:
    """The config LightningCLI is instantiating the current module from, or None outside the CLI (a notebook).

    Lightning keeps it in a private context variable that `save_hyperparameters` reads."""
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    return _given_hyperparameters.get()


def load_dcp_keys(path: str, keys: set[str]) -> dict[str, Any]:
    """The top-level `keys` of a torch distributed checkpoint folder, read on one process without a process group."""
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    return _load_state_dict_from_keys(keys, checkpoint_id=path)


def checkpoint_activations(module: Any) -> None:
    """Composable activation checkpointing: `module` keeps its type and state-dict keys (unlike the wrapper)."""
    from torch.distributed._composable import checkpoint

    checkpoint(module)


def aut_output_lengths(frames: Any, n_window: int) -> Any:
    """Tokens Qwen3-Omni's AuT encoder makes of `frames` mel frames: transformers' own formula, checked against."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths

    return _get_feat_extract_output_lengths(frames, n_window)


def attached_trainer(module: Any) -> Any:
    """A LightningModule's trainer, or None when it is not attached (`module.trainer` raises then)."""
    return module._trainer


def loop_position(trainer: Any) -> tuple[int, int, int]:
    """(epochs ready, epochs started, batches processed in the current epoch) from the fit loop's progress counters,
    the ones Lightning saves and restores with a checkpoint (not a documented API)."""
    epochs = trainer.fit_loop.epoch_progress.current
    return epochs.ready, epochs.started, trainer.fit_loop.epoch_loop.batch_progress.current.processed


def attn_implementation(config: Any) -> str:
    """The attention backend a transformers config was built with (transformers keeps it private)."""
    return config._attn_implementation


def build_from_config(model_class: Any, config: Any, **kwargs: Any) -> Any:
    """A transformers model of `model_class` from `config` (a class with no Auto mapping, e.g. Qwen3-VL), with the
    `attn_implementation` / `dtype` keywords `from_pretrained` takes."""
    return model_class._from_config(config, **kwargs)


def no_init_weights() -> Any:
    """transformers' context in which torch's and transformers' init functions do nothing (it also skips
    `PreTrainedModel.init_weights`, so weights are not tied: re-tie after)."""
    from transformers.initialization import no_init_weights as skip_init

    return skip_init()


def no_split_modules(model: Any) -> set[str]:
    """The class names of a transformers model's blocks that must not be split across devices (FSDP's wrap units)."""
    return set(model._no_split_modules or [])


def check() -> None:
    """Resolve every private symbol and attribute above on the installed versions; raises naming the first missing."""
    for module, name in PRIVATE_SYMBOLS:
        if not hasattr(importlib.import_module(module), name):
            raise ImportError(f"{module}.{name} is gone from the installed version; update valley3.compat")
    from lightning.pytorch import LightningModule, Trainer
    from transformers import PretrainedConfig, PreTrainedModel

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    loop_position(trainer)
    attached_trainer(LightningModule())
    if not hasattr(PretrainedConfig(), "_attn_implementation"):
        raise AttributeError("transformers configs no longer have _attn_implementation; update valley3.compat")
    for attribute in ("_from_config", "_no_split_modules"):
        if not hasattr(PreTrainedModel, attribute):
            raise AttributeError(f"transformers PreTrainedModel has no {attribute}; update valley3.compat")
