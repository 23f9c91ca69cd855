"""GRPO loss math against worked examples (verl#593, Dr. GRPO, zero-spread groups, KL at the reference) and TRL."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from valley3.stages.grpo_loss import (
    aggregate,
    group_advantages,
    importance_log_ratio,
    kl_estimate,
    mask_truncated,
    policy_loss,
    zero_spread,
)

# verl#593's example: one sequence of 5 tokens, one of 1 token.
VERL_593 = torch.tensor([[2, 2, 2, 2, 2, 6, 5, 3, 2, 4], [10, 3, 4, 5, 2, 3, 4, 1, 1, 3]], dtype=torch.float32)
VERL_593_MASK = torch.tensor([[1] * 5 + [0] * 5, [1] + [0] * 9])


def test_token_mean_and_sequence_mean_give_the_numbers_of_verl_593():
    assert aggregate(VERL_593, VERL_593_MASK, "token_mean").item() == pytest.approx(20 / 6)  # 3.333
    assert aggregate(VERL_593, VERL_593_MASK, "sequence_mean").item() == pytest.approx(6.0)


def test_dr_grpo_divides_by_the_configured_max_length_not_the_lengths():
    got = aggregate(VERL_593, VERL_593_MASK, "dr_grpo", max_length=16)
    assert got.item() == pytest.approx(20 / (2 * 16))
    assert aggregate(VERL_593, VERL_593_MASK, "dr_grpo", max_length=32).item() == pytest.approx(got.item() / 2)
    with pytest.raises(ValueError, match="max_length"):
        aggregate(VERL_593, VERL_593_MASK, "dr_grpo")


def test_micro_batches_with_the_whole_batch_counts_add_up_to_the_whole_batch_loss():
    for mode in ("token_mean", "sequence_mean", "dr_grpo"):
        whole = aggregate(VERL_593, VERL_593_MASK, mode, max_length=10)
        parts = sum(
            aggregate(VERL_593[i : i + 1], VERL_593_MASK[i : i + 1], mode, max_length=10,
                      num_tokens=float(VERL_593_MASK.sum()), num_sequences=2)
            for i in range(2)
        )
        assert parts.item() == pytest.approx(whole.item()), mode


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_a_group_with_equal_rewards_gives_exactly_zero_policy_gradient(scale):
    # 0.1 + 0.2 style rewards: equal in value, computed differently, so a std test would see a tiny spread.
    rewards = torch.tensor([0.3, 0.1 + 0.2, 0.3, 0.3, 1.0, 0.0, 0.5, 0.5])
    adv = group_advantages(rewards, 4, scale, tol=1e-6)
    assert zero_spread(rewards, 4, tol=1e-6).tolist() == [True, False]
    assert torch.equal(adv[:4], torch.zeros(4))
    logps = torch.randn(8, 6, requires_grad=True)
    mask = torch.ones(8, 6)
    out = policy_loss(logps, logps.detach() + 0.1 * torch.randn(8, 6), adv, mask, clip_high=0.28)
    out.loss.backward()
    assert torch.equal(logps.grad[:4], torch.zeros(4, 6))
    assert logps.grad[4:].abs().sum() > 0


def test_group_advantages_match_trls_formula():
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd

    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 2.0, 1.0, 1.0, 0.0])
    grouped = rewards.view(2, 4)
    mean = grouped.mean(1).repeat_interleave(4)
    expected = {
        "group": (rewards - mean) / (nanstd(grouped, dim=1).repeat_interleave(4) + 1e-4),
        "batch": (rewards - mean) / (nanstd(rewards) + 1e-4),
        "none": rewards - mean,
    }
    for scale, want in expected.items():
        assert torch.allclose(group_advantages(rewards, 4, scale), want, atol=1e-6), scale


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_is_exactly_zero_when_policy_equals_reference(estimator):
    logps = torch.log_softmax(torch.randn(4, 7, 11), -1)[..., 0]
    assert torch.equal(kl_estimate(logps, logps.clone(), estimator), torch.zeros_like(logps))
    out = policy_loss(logps.requires_grad_(), logps.detach(), torch.randn(4), torch.ones(4, 7), beta=0.04,
                      ref_logps=logps.detach().clone(), kl_estimator=estimator)
    assert out.kl == 0.0


def test_kl_estimators_worked_values():
    logps, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])  # log r = -1
    assert kl_estimate(logps, ref, "k1").item() == pytest.approx(1.0)
    assert kl_estimate(logps, ref, "k2").item() == pytest.approx(0.5)
    assert kl_estimate(logps, ref, "k3").item() == pytest.approx(torch.exp(torch.tensor(-1.0)).item())  # e^-1 - 1 + 1


def test_beta_zero_needs_no_reference_and_beta_positive_does():
    logps = torch.zeros(2, 3)
    assert policy_loss(logps, logps, torch.ones(2), torch.ones(2, 3)).kl is None
    with pytest.raises(ValueError, match="reference"):
        policy_loss(logps, logps, torch.ones(2), torch.ones(2, 3), beta=0.1)


def test_truncated_completions_are_masked_out_of_the_loss():
    mask = torch.ones(3, 4)
    got = mask_truncated(mask, torch.tensor([False, True, False]))
    assert got.tolist() == [[1] * 4, [0] * 4, [1] * 4]
    logps = torch.randn(3, 4, requires_grad=True)
    policy_loss(logps, logps.detach() - 0.05, torch.tensor([1.0, -1.0, 0.5]), got).loss.backward()
    assert torch.equal(logps.grad[1], torch.zeros(4))


def test_clip_higher_clips_low_and_high_at_their_own_bounds():
    old = torch.zeros(4, 1)
    logps = torch.log(torch.tensor([[0.7], [1.25], [1.35], [0.9]]))  # ratios
    adv = torch.tensor([-1.0, 1.0, 1.0, -1.0])
    out = policy_loss(logps, old, adv, torch.ones(4, 1), clip_low=0.2, clip_high=0.28)
    # ratio 0.7 < 0.8 with A < 0: clipped low; 1.35 > 1.28 with A > 0: clipped high; 1.25 inside the high bound.
    assert out.clip_low == pytest.approx(0.25) and out.clip_high == pytest.approx(0.25)
    expected = -torch.tensor([-0.8, 1.25, 1.28, -0.9]).mean()
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_sequence_level_ratio_is_the_length_normalised_sequence_ratio():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    old = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -2.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    got = importance_log_ratio(logps, old, mask, "sequence")
    assert got.squeeze(1).tolist() == pytest.approx([(0.5 + 0 - 1) / 3, (0 + 1) / 2])


def _trl_loss(loss_type: str, level: str, beta: float, logps, old, ref, adv, mask, max_len: int) -> torch.Tensor:
    """TRL 1.16's `GRPOTrainer._compute_loss` run on given log-probs, with only the attributes it reads."""
    from trl import GRPOTrainer

    def per_token_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        return logps, torch.zeros_like(logps), None

    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=per_token_logps, aux_loss_enabled=False, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, importance_sampling_level=level, beta=beta, loss_type=loss_type,
        epsilon_low=0.2, epsilon_high=0.28, use_vllm=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_len, _entropy_bonus_enabled=False,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        accelerator=SimpleNamespace(num_processes=1, reduce=lambda x, reduction: x, gather=lambda x: x),
        _metrics=defaultdict(lambda: defaultdict(list)),
    )
    b, n = mask.shape
    inputs = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.zeros(b, n, dtype=torch.long), "completion_mask": mask,
        "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }
    return GRPOTrainer._compute_loss(trainer, None, inputs)


@pytest.mark.parametrize("loss_type, aggregation", [("dapo", "token_mean"), ("grpo", "sequence_mean"),
                                                    ("dr_grpo", "dr_grpo"), ("bnpo", "token_mean")])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_and_gradient_match_trl_grpo_trainer(loss_type, aggregation, level, beta):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(0)
    b, n = 6, 9
    old = -torch.rand(b, n, generator=g) * 3
    logps = (old + 0.3 * torch.randn(b, n, generator=g)).requires_grad_()  # ratios beyond both clip bounds
    ref = old + 0.2 * torch.randn(b, n, generator=g)
    mask = (torch.arange(n)[None] < torch.tensor([9, 3, 7, 1, 5, 9])[:, None]).long()
    adv = torch.randn(b, generator=g)
    want = _trl_loss(loss_type, level, beta, logps, old, ref, adv, mask, max_len=12)
    (want_grad,) = torch.autograd.grad(want, logps)
    got = policy_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.28, importance_level=level,
                      aggregation=aggregation, max_length=12, ref_logps=ref, beta=beta).loss
    (got_grad,) = torch.autograd.grad(got, logps)
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    assert torch.allclose(got_grad, want_grad, atol=1e-6)
