"""Per-token log-probabilities and entropy of the labelled tokens of a batch, from its logits (fp32)."""

from __future__ import annotations

from dataclasses import dataclass
import torch

from valley3.data.batch import Batch
from valley3.data.processor import IGNORE_INDEX


@dataclass
class TokenLogProbs:
    """Per-position values of a [B, L] batch (B = rows: padded samples, or packs of samples)."""

    logprobs: torch.Tensor  # [B, L] float32: log p(token t | < t) where labelled, 0 elsewhere
    entropy: torch.Tensor  # [B, L] float32: entropy of the predictive distribution there, 0 elsewhere
    mask: torch.Tensor  # [B, L] bool: True where labelled

    def per_sample(self, batch: Batch) -> list[torch.Tensor]:
        """Each sample's labelled log-probs, in order: one per row of a padded batch, one per `cu_seqlens` piece of
        a packed one (the same list either way)."""
        return [values[mask] for values, mask in zip(*self._pieces(self.logprobs, batch))]

    def entropy_per_sample(self, batch: Batch) -> list[torch.Tensor]:
        """As `per_sample`, for the entropy."""
        return [values[mask] for values, mask in zip(*self._pieces(self.entropy, batch))]

    def _pieces(self, values: torch.Tensor, batch: Batch):
        cu_seqlens = batch.cu_seqlens
        if cu_seqlens is None:
            return values, self.mask
        sizes = cu_seqlens.diff().tolist()
        return values.flatten().split(sizes), self.mask.flatten().split(sizes)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> TokenLogProbs:
    """log_softmax(logits / temperature) in fp32 at each labelled token, from the logits one position before.

    Only the labelled positions are gathered (a [labelled, vocab] slice, not the whole [B, L, vocab] in fp32);
    gradients flow into `logits` when grad is enabled.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, 1:] = labels[:, 1:] != IGNORE_INDEX
    scores = logits[:, :-1][mask[:, 1:]].float() / temperature  # [N, vocab]: the positions predicting a label
    log_p = scores.log_softmax(-1)
    chosen = log_p.gather(-1, labels[mask][:, None]).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    zeros = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    return TokenLogProbs(zeros.masked_scatter(mask, chosen), zeros.masked_scatter(mask, entropy), mask)
