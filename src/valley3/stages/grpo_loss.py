"""GRPO loss math as pure tensor functions: group advantages, clipped policy loss, KL estimators, aggregation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SCALES = ("group", "batch", "none")
AGGREGATIONS = ("token_mean", "sequence_mean", "dr_grpo")
RATIO_LEVELS = ("token", "sequence")
KL_ESTIMATORS = ("k1", "k2", "k3")


def _check(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def zero_spread(rewards: Tensor, group_size: int, tol: float = 0.0) -> Tensor:
    """[N / G] bool: groups whose rewards all lie within `tol` of each other (max - min <= tol).

    Compared as max - min, not std == 0.0 (NeMo-RL PR#4158): equal floats that came through different sums
    still count as equal groups when `tol` is a little above 0.
    """
    grouped = _grouped(rewards, group_size)
    return (grouped.amax(1) - grouped.amin(1)) <= tol


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    if group_size < 1 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4, tol: float = 0.0
) -> Tensor:
    """[N] advantage of each completion: its reward minus its group's mean, divided by a std (see `scale`).

    Args:
        rewards: [N] rewards, the G completions of a prompt next to each other (N = prompts x G).
        group_size: G.
        scale: "group" divides by the group's std (GRPO), "batch" by the std of the whole batch (REINFORCE++ /
            TRL's "batch"), "none" leaves the centred reward (Dr. GRPO: no difficulty bias).
        eps: added to the std (TRL uses 1e-4).
        tol: groups whose rewards spread by at most this (`zero_spread`) get exactly 0: no policy gradient.
    """
    _check("scale_rewards", scale, SCALES)
    grouped = _grouped(rewards.float(), group_size)
    centred = grouped - grouped.mean(1, keepdim=True)
    if scale == "group":
        std = grouped.std(1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    elif scale == "batch":
        std = grouped.flatten().std() if grouped.numel() > 1 else grouped.new_zeros(())
        centred = centred / (std + eps)
    flat = zero_spread(rewards.float(), group_size, tol)
    return centred.masked_fill(flat[:, None], 0.0).flatten()


def kl_estimate(logps: Tensor, ref_logps: Tensor, estimator: str = "k3", clamp: float | None = 10.0) -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman's k1 / k2 / k3).

    With r = pi_ref / pi: k1 = -log r, k2 = (log r)^2 / 2, k3 = r - 1 - log r (GRPO's; unbiased, >= 0). Each is
    exactly 0 where logps == ref_logps. `clamp` bounds log r before k3's exp, as verl's low_var_kl does, so a
    token the reference finds far likelier cannot blow up the loss (k3's gradient is biased where pi drifts
    from pi_ref: verl PR#2953; `kl_ratio_correction` in `policy_loss` weights it by the importance ratio).
    """
    _check("kl_estimator", estimator, KL_ESTIMATORS)
    log_r = ref_logps - logps
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r.square()
    if clamp is not None:
        log_r = log_r.clamp(-clamp, clamp)
    return torch.exp(log_r) - 1 - log_r


def mask_truncated(mask: Tensor, truncated: Tensor) -> Tensor:
    """The loss mask with every row of a completion cut at the length budget zeroed (DAPO's overlong masking):
    a truncated answer is neither right nor wrong, so it should not be pushed either way."""
    return mask * (~truncated.bool())[:, None].to(mask.dtype)


def aggregate(
    per_token: Tensor, mask: Tensor, mode: str = "token_mean", max_length: int | None = None,
    num_tokens: float | None = None, num_sequences: float | None = None,
) -> Tensor:
    """A [B, L] per-token loss reduced to a scalar.

    "token_mean" (DAPO, TRL's "dapo"/"bnpo"): sum over every masked token / their count, so each token weighs
    the same. "sequence_mean" (GRPO paper): mean over tokens within each sequence, then over sequences, which
    gives a short sequence's tokens more weight (verl#593, trl#2995). "dr_grpo": sum / (sequences x
    `max_length`), a constant normaliser, so no length bias at all.

    `num_tokens` / `num_sequences` replace the batch's own counts when a rollout batch is split into
    micro-batches whose gradients add up: each then divides by the whole batch's count.
    """
    _check("loss_aggregation", mode, AGGREGATIONS)
    mask = mask.to(per_token.dtype)
    sequences = per_token.shape[0] if num_sequences is None else num_sequences
    if mode == "token_mean":
        tokens = mask.sum() if num_tokens is None else torch.as_tensor(num_tokens, dtype=per_token.dtype)
        return (per_token * mask).sum() / tokens.clamp(min=1.0)
    if mode == "sequence_mean":
        per_sequence = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return per_sequence.sum() / max(sequences, 1)
    if max_length is None or max_length < 1:
        raise ValueError("loss_aggregation 'dr_grpo' needs max_length: the completion budget it divides by")
    return (per_token * mask).sum() / (max(sequences, 1) * max_length)


@dataclass
class LossOutput:
    """The loss and the numbers a step logs about it (plain floats, detached)."""

    loss: Tensor
    clip_low: float  # share of masked tokens clipped below 1 - clip_low with a negative advantage
    clip_high: float  # share clipped above 1 + clip_high with a positive advantage
    kl: float | None  # mean per-token KL (None without a reference)
    ratio_mean: float


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    x = x.expand_as(mask).float()
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def importance_log_ratio(logps: Tensor, old_logps: Tensor, mask: Tensor, level: str = "token") -> Tensor:
    """log(pi / pi_old) per token ([B, L]), or per sequence ([B, 1], GSPO: the mean of the token log-ratios,
    the log of the length-normalised sequence ratio)."""
    _check("importance_level", level, RATIO_LEVELS)
    log_ratio = logps - old_logps
    if level == "token":
        return log_ratio
    mask = mask.to(log_ratio.dtype)
    return ((log_ratio * mask).sum(1) / mask.sum(1).clamp(min=1.0))[:, None]


def policy_loss(
    logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *,
    clip_low: float = 0.2, clip_high: float | None = None, importance_level: str = "token",
    aggregation: str = "token_mean", max_length: int | None = None, ref_logps: Tensor | None = None,
    beta: float = 0.0, kl_estimator: str = "k3", kl_ratio_correction: bool = False,
    num_tokens: float | None = None, num_sequences: float | None = None,
) -> LossOutput:
    """The clipped surrogate loss of PPO/GRPO over a [B, L] batch of completion tokens.

    per token: -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A) + beta * KL, reduced by
    `aggregate`. `clip_high` > `clip_low` is DAPO's clip-higher (default: = clip_low). `beta` 0 needs no
    `ref_logps`. `kl_ratio_correction` multiplies the KL term by the importance ratio (DeepSeek-V3.2's
    unbiased KL gradient, TRL's use_bias_correction_kl).

    Args:
        logps: [B, L] log-probs of the completion tokens under the policy being trained (with grad).
        old_logps: [B, L] the same under the policy that sampled them (no grad).
        advantages: [B] one advantage per completion.
        mask: [B, L] 1 where a token is trained (completion tokens; 0 for padding, tool output, truncation).
    """
    if beta and ref_logps is None:
        raise ValueError("beta > 0 needs the reference model's log-probs (ref_logps)")
    mask = mask.to(logps.dtype)
    log_ratio = importance_log_ratio(logps, old_logps.detach(), mask, importance_level)
    ratio = torch.exp(log_ratio)
    high = clip_low if clip_high is None else clip_high
    adv = advantages.to(logps.device, logps.dtype)[:, None]
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1 - clip_low, 1 + high) * adv).expand_as(logps)
    kl_value = None
    if beta:
        kl = kl_estimate(logps, ref_logps.detach(), kl_estimator)
        kl_value = _masked_mean(kl.detach(), mask)
        per_token = per_token + beta * (kl * ratio if kl_ratio_correction else kl)
    loss = aggregate(per_token, mask, aggregation, max_length, num_tokens, num_sequences)
    with torch.no_grad():
        low_clipped = (ratio < 1 - clip_low) & (adv < 0)
        high_clipped = (ratio > 1 + high) & (adv > 0)
        stats = (_masked_mean(low_clipped, mask), _masked_mean(high_clipped, mask), _masked_mean(ratio, mask))
    return LossOutput(loss, stats[0], stats[1], kl_value, stats[2])
