"""Reading one tower's weights out of a whole-model checkpoint folder (safetensors shards only)."""

from __future__ import annotations

from pathlib import Path

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
