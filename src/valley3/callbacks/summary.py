"""LossSummary: at the end of fit, print how the training loss moved and how many samples were skipped."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from valley3.data.batch import Batch, PromptBatch


class LossSummary(L.Callback):
    """Records the training loss every step; prints the mean of the first and last `window` steps.

    Args:
        window: steps averaged at each end.
    """

    def __init__(self, window: int = 10):
        self.window = window
        self.losses: list[float] = []
        self.skipped = 0
        self.skipped_batches = 0  # batches whose every sample was skipped: no step, no loss

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.skipped += int(batch.skipped) if isinstance(batch, (Batch, PromptBatch)) else 0
        # A training step that returns None (nothing left in the batch) reaches here as None or {}.
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            self.skipped_batches += 1
        else:
            self.losses.append(float(loss))

    def first_last(self) -> tuple[float, float]:
        head, tail = self.losses[: self.window], self.losses[-self.window :]
        return sum(head) / len(head), sum(tail) / len(tail)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self.losses:
            return
        first, last = self.first_last()
        rank_zero_info(
            f"loss: first {len(self.losses[: self.window])} steps {first:.3f} -> last {self.window} steps {last:.3f} "
            f"({100 * last / first:.0f}% of the start) over {len(self.losses)} steps; {self.skipped} samples skipped"
            + (f" ({self.skipped_batches} batches had none left)" if self.skipped_batches else "")
            + (f"; {bad} bad records skipped at reading" if (bad := _bad_records(trainer)) else "")
        )


def _bad_records(trainer) -> int:
    """Records the DataModule dropped as schema failures (`on_bad_record: skip`)."""
    return sum(getattr(getattr(trainer, "datamodule", None), "bad_records", {}).values())
