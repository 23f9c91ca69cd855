"""A tiny omni model trained for a few seconds on short effort-tagged `<thinking>` answers, saved as a checkpoint."""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import tiny_omni
from tests.policy.test_checkpoint import _model_config
from valley3.data.collate import PadCollator
from valley3.data.formats import parse_record
from valley3.reasoning import effort_levels, format_reasoning

# The release's three levels without the policy text and level list, so prompts stay short and training quick.
LEVELS = {"levels": [{"name": "minimal", "description": "no thinking", "thinks": False},
                     {"name": "medium", "description": "the steps"},
                     {"name": "high", "description": "the steps and a check"}],
          "policy": "", "listing": ""}


def thinking(level: str, a: int, b: int) -> str:
    steps = [f"{a} plus {b}.", f"{a} + {b} = {a + b}."]
    extra = [f"Check: {a + b} - {b} = {a}.", f"So the answer is {a + b}."]
    return "\n".join({"minimal": [], "medium": steps, "high": steps + extra}[level])


def record(a: int, b: int, level: str, answered: bool = True) -> dict:
    messages = [{"role": "user", "content": f"What is {a} plus {b}?"}]
    if answered:
        messages.append({"role": "assistant", "content": format_reasoning(thinking(level, a, b), f"{a + b}.")})
    return {"id": f"{a}+{b}-{level}", "effort": level, "messages": messages}


def _train(policy, steps: int = 150) -> None:
    rng = random.Random(0)
    pairs = [(rng.randint(1, 20), rng.randint(1, 20)) for _ in range(48)]
    examples = [policy.processor(parse_record(record(a, b, lv), f"train:{i}", "."))
                for i, (a, b) in enumerate(pairs) for lv in ("minimal", "medium", "high")]
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    collate = PadCollator(policy.processor.pad_id)
    policy.model.train()
    torch.manual_seed(0)
    for _ in range(steps):
        batch = collate([examples[i] for i in torch.randint(len(examples), (16,)).tolist()])
        logits = policy.model(batch.input_ids, batch.attention_mask)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(),
                                                 ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.model.eval()


@pytest.fixture(scope="session")
def reasoning_ckpt(tmp_path_factory):
    """(checkpoint path, policy): trained on the levels above, saved as `valley3 fit` saves a stage."""
    from valley3.policy import Policy, build_processor

    model = tiny_omni(seed=1)
    processor = build_processor(model)
    processor.template.efforts = effort_levels(LEVELS)
    policy = Policy(model, processor)
    _train(policy)
    hparams = {"_class_path": "valley3.stages.ReasoningSFTStage", "model": _model_config(), "efforts": LEVELS,
               "train_thinking": True, "system_prompt": "You are a helpful assistant.", "max_len": 512,
               "max_tiles": 1, "video": None}
    path = tmp_path_factory.mktemp("reasoning") / "last.ckpt"
    torch.save({"hyper_parameters": hparams, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               path)
    return path, policy
