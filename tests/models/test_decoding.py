"""Sampling.pick: draws follow softmax(logits / T) after top-k/top-p; log-probs are taken before the filters."""

from __future__ import annotations

import torch

from valley3.models.decoding import Sampling

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])


def _draw(sampling: Sampling, rows: int = 40_000) -> tuple[torch.Tensor, torch.Tensor]:
    logits = LOGITS.expand(rows, -1).clone()
    return sampling.pick(logits, 0, torch.arange(rows), rows)


def test_draws_follow_the_tempered_distribution_and_logprobs_are_before_filtering():
    tokens, logprobs = _draw(Sampling(temperature=0.7, generator=torch.Generator().manual_seed(0)))
    expected = (LOGITS / 0.7).softmax(-1)
    assert (torch.bincount(tokens, minlength=5) / len(tokens) - expected).abs().max() < 0.01
    assert torch.allclose(logprobs, expected.log()[tokens])
    tokens, logprobs = _draw(Sampling(temperature=0.7, top_k=2, generator=torch.Generator().manual_seed(1)))
    kept = expected[:2] / expected[:2].sum()
    assert set(tokens.tolist()) == {0, 1} and abs(float((tokens == 0).float().mean()) - kept[0]) < 0.01
    assert torch.allclose(logprobs, expected.log()[tokens])  # under the full softmax, not the top-k one
    tokens, _ = _draw(Sampling(temperature=1.0, top_p=0.5, generator=torch.Generator().manual_seed(2)))
    assert set(tokens.tolist()) == {0}  # token 0 alone holds over half the mass


def test_a_rows_draws_do_not_depend_on_the_other_rows():
    sampling = Sampling(generator=torch.Generator().manual_seed(3))
    all_rows, _ = sampling.pick(LOGITS.expand(4, -1).clone(), 0, torch.arange(4), 4)
    sampling.generator.manual_seed(3)
    some_rows, _ = sampling.pick(LOGITS.expand(2, -1).clone(), 0, torch.tensor([1, 3]), 4)
    assert some_rows.tolist() == all_rows[[1, 3]].tolist()
