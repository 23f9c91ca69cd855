"""OmniStage: the LightningModule every training stage is a thin layer over."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from safetensors.torch import load_file
from torch.distributed.fsdp import FSDPModule
from torchmetrics import MeanMetric

from valley3.compat import attached_trainer, given_hyperparameters, load_dcp_keys
from valley3.data.batch import Batch
from valley3.data.processor import IGNORE_INDEX, VideoSpec
from valley3.models.omni import OmniModel
from valley3.policy.prompts import build_processor
from valley3.stages.sharding import FSDPConfig, gather_records, global_token_mean, shard_model


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy summed over every supervised token of the batch, and that count.

    The mean is taken over the batch's tokens, not per sample, so packing leaves the objective unchanged.
    """
    targets = labels[:, 1:]
    total = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total, (targets != IGNORE_INDEX).sum()


def present(model: OmniModel, **lrs: float) -> dict[str, float]:
    """The learning rates of `lrs` for the components `model` has (a stage's default table, on any model)."""
    return {name: lr for name, lr in lrs.items() if name in model.components()}


class OmniStage(L.LightningModule):
    """Trains an OmniModel on next-token loss over assistant tokens.

    Args:
        model: the network (dependency injection: the stage owns steps and optimisation, not architecture).
        lr: learning rate per component (vision, vision_connector, audio, audio_connector, decoder);
            0 freezes a component. Components not named get `default_lr`.
        default_lr: learning rate of components `lr` does not name.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        warmup_steps: linear warm-up steps before cosine decay to 10% of the peak.
        max_len: longest example in tokens; longer ones are truncated or skipped.
        init_from: a checkpoint (Lightning .ckpt, an FSDP checkpoint folder, or .safetensors) whose weights
            initialise the model.
        system_prompt: system turn used when a sample has none.
        max_new_tokens: generation length in `predict_step`.
        max_tiles: dynamic tiling: a sample's single image becomes up to this many tiles plus a thumbnail, each
            costing an image's tokens (Valley2: 9); multi-image samples and video frames are never tiled. 1 = off.
        video: video frame sampling and audio-in-video, as `VideoSpec` keywords, e.g. `{fps: 2, max_frames: 32}`
            or `{num_frames: 8, audio: false}`. Default: 16 uniform frames, the audio track added when the model
            has an audio encoder. (A dict, not a VideoSpec, so checkpoints keep plain hyperparameters.)
        fsdp: how `configure_model` shards under `ModelParallelStrategy` (FSDP2), as `FSDPConfig` keywords, e.g.
            `{activation_checkpointing: true, mixed_precision: bf16}`; ignored by other strategies.
    """

    def __init__(
        self,
        model: OmniModel,
        lr: dict[str, float] | None = None,
        default_lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        max_len: int | None = 2048,
        init_from: str | None = None,
        system_prompt: str = "You are a helpful assistant.",
        max_new_tokens: int = 64,
        max_tiles: int = 1,
        video: dict[str, Any] | None = None,
        fsdp: dict[str, Any] | None = None,
    ):
        super().__init__()
        # Under LightningCLI `model` is saved as its config (so a checkpoint rebuilds its own model);
        # given as a module (a notebook), it is left out: its weights are in the state dict anyway.
        self.save_hyperparameters(ignore=[] if given_hyperparameters() else ["model"])
        self.model = model
        self.fsdp = FSDPConfig(**(fsdp or {}))
        unknown = set(lr or {}) - set(model.components())
        if unknown:
            raise ValueError(f"lr names unknown component(s) {sorted(unknown)}; the model has {sorted(model.components())}")
        self.lrs = {name: (lr or {}).get(name, default_lr) for name in model.components()}
        for name, module in model.components().items():
            module.requires_grad_(self.lrs[name] > 0)
        self.processor = build_processor(model, system_prompt, max_tiles, VideoSpec(**(video or {})))
        self.max_len = max_len
        if init_from:
            self.load_weights(init_from)
        self.tokens_seen = 0  # non-padding tokens trained on by this process (the pipeline's summary reads it)
        # val/test loss: the token mean over the whole epoch on every rank (each batch weighted by its supervised
        # tokens), not a mean of batch means or of per-rank means.
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._start_time: float | None = None
        self._predictions: list[dict[str, str | None]] = []  # this rank's `predict_step` records

    # -- weights ---------------------------------------------------------------------------------
    def load_weights(self, path: str) -> None:
        """Initialise from a previous stage: a Lightning checkpoint (a file, or the folder an FSDP run saves) or a
        safetensors file (never unpickled code)."""
        if Path(path).suffix == ".safetensors":
            state = load_file(path)
        elif Path(path).is_dir():  # ModelParallelStrategy's distributed checkpoint: only the weights are read
            state = load_dcp_keys(path, {"state_dict"})["state_dict"]
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        state = {k.removeprefix("model."): v for k, v in state.items()}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if len(unexpected) == len(state):  # wrong file or key layout: training would start from random weights
            raise ValueError(f"init_from {path}: none of its {len(state)} tensors matches a parameter of the model")
        rank_zero_info(f"init_from {path}: {len(state)} tensors, {len(missing)} missing, {len(unexpected)} unexpected")

    def trainable_table(self) -> str:
        """A table of parameters per component: total, trainable, learning rate."""
        rows = ["| component | params | trainable | lr |", "|---|---:|---:|---:|"]
        for name, module in self.model.components().items():
            total = sum(p.numel() for p in module.parameters())
            trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append(f"| {name} | {total:,} | {trainable:,} | {self.lrs[name]:g} |")
        return "\n".join(rows)

    def setup(self, stage: str) -> None:
        rank_zero_info("\n" + self.trainable_table())
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "connect"):
            datamodule.connect(self.processor, self.max_len)

    # -- steps -----------------------------------------------------------------------------------
    def model_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (mean over the batch's supervised tokens) and the number of those tokens."""
        total, count = self._loss_sum(batch)
        return total / count.clamp(min=1), count

    def _loss_sum(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return masked_loss(self.logits(batch), batch.labels)

    def logits(self, batch: Batch) -> torch.Tensor:
        """The model's logits [B, L, vocab] over a training batch."""
        return self.model(**batch.model_inputs())

    def _log_skipped(self, batch: Batch, split: str) -> None:
        self.log(f"{split}/skipped", batch.skipped.float(), on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        self._log_skipped(batch, "train")
        if batch.empty:  # every sample of this batch was skipped
            if self.trainer.world_size == 1:
                return None
            # The other ranks wait for this one's gradients (and, under FSDP, its all-gathers): it runs a one-token
            # batch with nothing supervised, a zero loss whose gradient is zero.
            batch = self._empty_batch()
        total, count = self._loss_sum(batch)
        # The objective is the token mean over every rank's batch together (see `global_token_mean`).
        loss, global_mean = global_token_mean(total, count, self.trainer.world_size)
        n = batch.input_ids.shape[0]
        self.tokens_seen += int(batch.attention_mask.sum())
        self.log("train/loss", global_mean, prog_bar=True, batch_size=n)
        self.log("train/supervised_tokens", count.float(), reduce_fx="sum", batch_size=n)
        if self._start_time is None:
            self._start_time = time.perf_counter()
        else:
            elapsed = time.perf_counter() - self._start_time
            self.log("train/tokens_per_s", self.tokens_seen / max(elapsed, 1e-9), batch_size=n)
        return loss

    def _empty_batch(self) -> Batch:
        ids = torch.full((1, 1), self.processor.pad_id, device=self.device)
        return Batch(torch.tensor(0), input_ids=ids, attention_mask=torch.ones_like(ids),
                     labels=torch.full_like(ids, IGNORE_INDEX))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_skipped(batch, "val")
        self._log_token_mean(batch, self.val_loss, "val/loss", prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_token_mean(batch, self.test_loss, "test/loss")

    def _log_token_mean(self, batch: Batch, metric: MeanMetric, name: str, **kwargs: Any) -> None:
        if not batch.empty:
            total, count = self._loss_sum(batch)
            metric.update(total.detach() / count.clamp(min=1), count)  # a batch with nothing supervised weighs 0
        # Logged also after an empty batch: under DDP a rank that never logged the metric would leave the others
        # waiting in its epoch-end sync.
        self.log(name, metric, on_step=False, on_epoch=True, **kwargs)

    def generate_text(self, batch: Batch, **kwargs: Any) -> list[str]:
        """Answers for a left-padded generation batch, decoded up to the end of the turn."""
        kwargs.setdefault("max_new_tokens", self.hparams.max_new_tokens)
        out = self.model.generate(batch.input_ids, batch.attention_mask, media=batch.media, sample_ids=batch.sample_ids,
                                  eos_token_id=self.processor.eos_id, pad_token_id=self.processor.pad_id, **kwargs)
        return [self.processor.decode(row) for row in out]

    def predict_step(self, batch: Batch, batch_idx: int) -> list[dict[str, str | None]]:
        """One record per sample: its id, its prompt (the last user turn), the generated answer (`output`) and the
        held-out reference if any. `valley3 predict` prints them and writes them to `predictions.jsonl`."""
        if batch.empty:
            return []
        n = len(batch.sample_ids)
        references, prompts = batch.references or [None] * n, batch.prompts or [None] * n
        records = [
            {"id": i, "prompt": q, "output": p, "reference": r}
            for i, q, p, r in zip(batch.sample_ids, prompts, self.generate_text(batch), references)
        ]
        self._predictions += records
        return records

    def on_predict_epoch_start(self) -> None:
        self._predictions = []

    def on_predict_epoch_end(self) -> None:
        """Rank 0 prints every answer and writes `predictions.jsonl` (every rank's records, rank by rank) to the run."""
        records = gather_records(self._predictions)
        out_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # log_dir: a collective
        if not self.trainer.is_global_zero:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "predictions.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        for r in records:
            print(f"[{r['id']}] {r['output']!r}", flush=True)
        print(f"{len(records)} answers written to {path.resolve()}", flush=True)

    # -- scale -----------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Under `ModelParallelStrategy`: FSDP2 on every block of the model (`model.block_classes`), then on the
        model, over the data-parallel mesh, with the options of `fsdp`. Other strategies leave the model as is."""
        mesh = self.device_mesh
        if mesh is None or isinstance(self.model, FSDPModule):  # not sharding, or sharded by an earlier fit
            return
        if mesh["tensor_parallel"].size() > 1:
            raise ValueError(
                "valley3 shards with FSDP only: give ModelParallelStrategy tensor_parallel_size=1 and "
                f"data_parallel_size={mesh.size()} (the world size)"
            )
        blocks = shard_model(self.model, self.model.block_classes, mesh["data_parallel"], self.fsdp)
        rank_zero_info(f"FSDP2: {blocks} blocks sharded over {mesh.size()} ranks, {self.fsdp}")

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self):
        groups = []
        for name, module in self.model.components().items():
            if self.lrs[name] <= 0:
                continue
            decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
            no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
            groups.append({"params": decay, "lr": self.lrs[name], "weight_decay": self.hparams.weight_decay, "name": name})
            groups.append({"params": no_decay, "lr": self.lrs[name], "weight_decay": 0.0, "name": f"{name}.no_decay"})
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        trainer = attached_trainer(self)
        total = trainer.estimated_stepping_batches if trainer is not None else 1
        warmup = self.hparams.warmup_steps

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
