"""`valley3 data zpd`: GRPO's prompt filter keeps exactly the prompts with pass rate in [0.25, 0.75] over k = 8."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from tests.conftest import tiny_omni
from valley3.stages import OmniStage
from valley3.stages.reject_sample import add_zpd_parser, reject_sample

PASSES = {f"p{n}": n for n in range(9)} | {"q3": 3}  # right answers out of 8 tries: every count once, 3/8 twice


class ScriptedAnswers:
    """Answers prompt `id` right on its first PASSES[id] tries and wrong after (a stand-in for the sampler)."""

    def __init__(self):
        self.tries: dict[str, int] = defaultdict(int)

    def __call__(self, batch, **kwargs):
        out = []
        for sid in batch.sample_ids:
            out.append("red" if self.tries[sid] < PASSES[sid] else "blue")
            self.tries[sid] += 1
        return out


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_zpd_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["zpd", *argv])


def test_zpd_defaults_are_k8_and_the_band_025_075():
    args = _parse(["--ckpt", "c.ckpt", "--data", "d.jsonl", "--out", "o"])
    assert args.k == 8 and tuple(args.band) == (0.25, 0.75)


def test_zpd_keeps_exactly_the_prompts_with_pass_rate_in_the_band(tmp_path):
    records = [{"id": sid, "messages": [{"role": "user", "content": f"Colour of {sid}?"},
                                        {"role": "assistant", "content": "Red."}]} for sid in PASSES]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = _parse(["--ckpt", "unused", "--data", str(data), "--out", str(tmp_path / "zpd")])
    stats = reject_sample(OmniStage(tiny_omni()), data, args.out, k=args.k, band=tuple(args.band), batch_size=4,
                          max_new_tokens=2, generate=ScriptedAnswers())
    kept = [json.loads(line) for line in (tmp_path / "zpd/kept.jsonl").read_text().splitlines()]
    want = [sid for sid, n in PASSES.items() if 0.25 <= n / 8 <= 0.75]
    assert want == ["p2", "p3", "p4", "p5", "p6", "q3"]
    assert [r["id"] for r in kept] == want
    assert [r["meta"]["pass_rate"] for r in kept] == [PASSES[s] / 8 for s in want]
    assert stats["kept"] == 6 and stats["band"] == [0.25, 0.75]
    assert stats["dropped"] == {"never_passed": 1, "always_passed": 1, "below_band": 1, "above_band": 1}
