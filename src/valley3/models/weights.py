"""Reading weights: one tower's out of a whole-model checkpoint folder (safetensors shards only), and transformers
models from local folders (`load_pretrained`, which builds shapes only on the meta device)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open


def tower_state(path: str | Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Tensors of every `*.safetensors` shard in `path` whose key starts with one of `prefixes`, prefix removed.

    Args:
        path: the checkpoint folder.
        prefixes: where the whole model keeps the tower (e.g. "thinker.audio_tower."); the first match wins.
    """
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(Path(path).glob("*.safetensors")):
        with safe_open(shard, framework="pt") as f:
            for key in f.keys():
                prefix = next((p for p in prefixes if key.startswith(p)), None)
                if prefix is not None:
                    state[key[len(prefix) :]] = f.get_tensor(key)
    return state


def on_meta() -> bool:
    """True where new tensors land on the meta device (`valley3 inspect` builds models there: shapes, no data)."""
    return torch.empty(0).device.type == "meta"


def local_folder(path: str | Path) -> Path:
    """`path` as a checkpoint folder on this machine; anything else (a hub repo id, a typo) is an error here, before
    transformers would try to download it."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path}: not a local checkpoint folder (valley3 reads weights from local folders "
                                "only and downloads nothing: fetch the checkpoint first and give its folder)")
    return Path(path)


def load_pretrained(model_class: Any, path: str | Path, **kwargs: Any) -> Any:
    """`model_class.from_pretrained(path, **kwargs)` from a local folder only; on the meta device the same model
    from the folder's config alone (transformers refuses to load weights there, and reading them would only cost
    time).

    Args:
        model_class: a transformers model class, or an Auto class (AutoModelForCausalLM).
        path: a local checkpoint folder.
        **kwargs: `from_pretrained` keywords that also build a model (attn_implementation, dtype).
    """
    path = local_folder(path)
    if not on_meta():
        return model_class.from_pretrained(path, local_files_only=True, **kwargs)
    if hasattr(model_class, "from_config"):  # an Auto class
        from transformers import AutoConfig

        return model_class.from_config(AutoConfig.from_pretrained(path, local_files_only=True), **kwargs)
    from valley3.compat import build_from_config

    config = model_class.config_class.from_pretrained(path, local_files_only=True)
    return build_from_config(model_class, config, **kwargs)


def build_without_init(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """`build()` with random initialisation skipped, for a model whose every weight is loaded right after (an
    export folder, a checkpoint): the init functions of torch and transformers do nothing while it runs (a
    1.7B-parameter decoder spends 39 s in them on 2 cores). Skipping init also skips transformers' weight tying,
    so every transformers model inside is re-tied after.
    """
    from transformers import PreTrainedModel

    from valley3.compat import no_init_weights

    with no_init_weights():
        model = build()
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.tie_weights()
    return model

