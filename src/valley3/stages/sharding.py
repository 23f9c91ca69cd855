"""FSDP2 for OmniStage: `fully_shard` per block, activation checkpointing, bf16 policy; cross-rank helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from valley3.compat import checkpoint_activations


@dataclass(frozen=True)
class FSDPConfig:
    """How `OmniStage.configure_model` shards the model when the trainer runs `ModelParallelStrategy` (FSDP2).

    Args:
        activation_checkpointing: recompute each block's activations in backward: activation memory of one block
            instead of all, for about a third more compute.
        mixed_precision: "bf16": parameters all-gathered and used in bf16, gradients reduce-scattered in fp32,
            fp32 master weights and optimiser state (keep the trainer at `precision: 32-true`); "fp32": no casting;
            "auto": bf16 on GPU, fp32 on CPU (bf16 is slow on CPU and loses the precision tiny models need).
        reshard_after_forward: free each block's gathered parameters after its forward and gather them again for
            backward (ZeRO-3); False keeps them until backward (fewer all-gathers, more memory).
    """

    activation_checkpointing: bool = False
    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"
    reshard_after_forward: bool = True

    def policy(self, device_type: str) -> MixedPrecisionPolicy:
        if self.mixed_precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"fsdp.mixed_precision must be auto, bf16 or fp32, not {self.mixed_precision!r}")
        if self.mixed_precision == "bf16" or (self.mixed_precision == "auto" and device_type == "cuda"):
            return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        return MixedPrecisionPolicy()


def shard_model(model: nn.Module, block_classes: set[type[nn.Module]], mesh: DeviceMesh, config: FSDPConfig) -> int:
    """Shard every module whose class is in `block_classes`, then `model` itself (which gathers what is left:
    embeddings, connectors, norms, the LM head). Returns the number of blocks sharded."""
    policy = config.policy(mesh.device_type)
    classes = tuple(block_classes)
    # Innermost first, so a block nested in another block (a tower inside a tower) is its own unit.
    blocks = [m for m in reversed(list(model.modules())) if isinstance(m, classes)]
    for block in blocks:
        if config.activation_checkpointing:
            checkpoint_activations(block)  # composable: the module keeps its type and its state-dict keys
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=config.reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return len(blocks)


def global_token_mean(total: torch.Tensor, count: torch.Tensor, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rank's objective and the global batch's token-mean loss (for the log).

    DDP and FSDP average gradients over ranks, so a per-rank token mean would give the mean of per-rank means. The
    rank's summed loss scaled by world_size / global token count averages to the exact token mean of the global
    batch instead. One process: `total / count`, unchanged.
    """
    if world_size == 1:
        loss = total / count.clamp(min=1)
        return loss, loss.detach()
    # float64 keeps the token count exact far beyond any batch; one all-reduce for both numbers.
    sums = torch.stack([total.detach().double(), count.double()])
    dist.all_reduce(sums)
    global_count = sums[1].clamp(min=1)
    return total * (world_size / global_count).to(total.dtype), (sums[0] / global_count).to(total.dtype)


def gather_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's records, rank by rank (an object all-gather: strings; once per run, not per step)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return records
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, records)
    return [r for part in parts for r in part]
