"""GRPO on 2 CPU ranks (DDP): ranks whose dynamic sampling keeps fewer groups, or none, still join every
all-reduce, and with one mini-batch per rollout the run trains exactly like one process on both ranks' prompts
together (with several, each rank splits its own completions into the mini-batches); FSDP is refused."""

from __future__ import annotations

import pytest
import torch

from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder

from .grpo_ddp_worker import RANKS, STEPS, fit
from .test_distributed import _run_two_ranks, _wait


def test_grpo_ranks_with_unequal_kept_groups_train_like_one_process(tmp_path):
    run = _run_two_ranks(tmp_path, module="tests.stages.grpo_ddp_worker", args=[str(tmp_path)])
    joint = fit([a + b for a, b in zip(*RANKS)])  # one process, both ranks' prompts in each batch
    _wait(run)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["steps"] for r in ranks] == [STEPS, STEPS] and joint.global_step == STEPS
    assert [r["rollouts"] for r in ranks] == [4, 4] and joint.rollout_step == 4
    assert all("not FSDP" in r["fsdp_refused"] for r in ranks), [r["fsdp_refused"] for r in ranks]
    reference = joint.model.state_dict()
    for r in ranks:
        for name, value in r["state"].items():
            torch.testing.assert_close(value, reference[name], atol=2e-5, rtol=0, msg=name)
        # The logged loss of a step is the whole step's (all ranks), as one process computes it.
        assert [x is None for x in r["losses"]] == [x is None for x in joint.losses] == [False, False, True, False]
        for got, want in zip(r["losses"], joint.losses):
            if want is not None:
                torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-5, rtol=0)
        # So are the other logged numbers, also on rank 0 in rollout 1, where it kept no group of its own.
        assert [x is None for x in r["entropy"]] == [x is None for x in joint.entropy]
        for got, want in zip(r["entropy"], joint.entropy):
            if want is not None:
                assert got == pytest.approx(want, abs=1e-5)
    torch.manual_seed(0)
    start = OmniModel(HFDecoder("tiny-qwen3")).state_dict()
    assert max((reference[k] - v).abs().max().item() for k, v in start.items()) > 1e-3  # the steps moved weights
