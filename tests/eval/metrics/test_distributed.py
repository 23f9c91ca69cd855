"""Two gloo processes give the same metric totals as one process (strings reduced to tensors in update)."""

import math
import time

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from valley3.eval.metrics import CaptionMetrics, CircularMCQ, JSONAttributeF1, StringMatch

# (question, rotation, subtask, prediction); correct letter of rotation r is "ABCD"[r].
# fmt: off
MCQ = [
    ("q1", 0, "IU", "A"), ("q1", 1, "IU", "B"), ("q1", 2, "IU", "C"), ("q1", 3, "IU", "D"),
    ("q2", 0, "IU", "A"), ("q2", 1, "IU", "B"), ("q2", 2, "IU", "C"), ("q2", 3, "IU", "A"),
    ("q3", 0, "OCR", "(A)"), ("q3", 1, "OCR", "B."), ("q3", 2, "OCR", "Answer: C"), ("q3", 3, "OCR", "D"),
    ("q4", 0, "OCR", "E"), ("q4", 1, "OCR", ""), ("q4", 2, "OCR", "C"), ("q4", 3, "OCR", "D"),
]
# fmt: on
JSON = [
    ('{"color": ["red", "red"], "size": {"waist": 32}, "fit": "slim"}', {"color": ["red"], "size": {"waist": 32}}),
    ('{"color": "blu', {"color": "blue", "neck": "crew"}),
    ("no json", {"brand": "acme"}),
    ('```json\n{"brand": "Acme", "logo": "yes"}\n```', {"brand": "acme", "logo": "no"}),
    ('{"pattern": "plain"}', {"pattern": "plain"}),
]
CAPTIONS = [
    ("c1", "a red shoe with white laces", ["a red leather shoe with white laces"]),
    ("c2", "a blue shirt", ["a blue cotton shirt", "blue shirt with round neck"]),
    ("c3", "<thinking>", ["black backpack"]),
    ("c4", "a black backpack with pockets", ["black backpack with two pockets"]),
]


def _run(rank: int, world: int) -> dict[str, float]:
    """Feed this rank's shard (every world-th row, so a question's rotations land on both ranks)."""
    mcq, only_rank0 = CircularMCQ(subtasks=["IU", "OCR"]), CircularMCQ(subtasks=["IU", "OCR"])
    f1, match = JSONAttributeF1(), StringMatch()
    captions = CaptionMetrics(metrics=("bleu2", "cider", "rouge_l"), tokenizer="simple")
    rows = MCQ[rank::world]
    for batch in (rows[:3], rows[3:]):
        q, r, s, p = zip(*batch)
        mcq.update(q, p, ["ABCD"[i] for i in r], s, rotations=r)
        match.update(p, ["ABCD"[i] for i in r])
        if rank == 0:  # the other rank sees nothing: its empty "cat" state must still sync
            only_rank0.update(q, p, ["ABCD"[i] for i in r], s, rotations=r)
    if world > 1 and rank == 0:
        only_rank0.update(*zip(*[(q, p, "ABCD"[r], s, r) for q, r, s, p in MCQ[1::2]]))
    preds, refs = zip(*JSON[rank::world])
    f1.update(preds, refs)
    shard = CAPTIONS[:3] if rank == 0 else CAPTIONS[3:]  # uneven shards: the byte tensors differ in size
    if world == 1:
        shard = CAPTIONS
    captions.update(*zip(*shard))
    out = {}
    for name, metric in [("mcq", mcq), ("rank0", only_rank0), ("f1", f1), ("match", match), ("cap", captions)]:
        out |= {f"{name}/{k}": v.item() for k, v in metric.compute().items()}
    return out


def _worker(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results[rank] = _run(rank, world)
    finally:
        dist.destroy_process_group()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_gloo_processes_match_one_process(tmp_path):
    single = _run(0, 1)
    # hand check of the single-process CircularMCQ: q1 pass, q2 fails (3/4), q3 pass, q4 fails -> 2/4
    assert single["mcq/acc"] == 0.5 and single["mcq/malformed/invalid_letter"] == 1
    # JSON: distinct pred pairs 3+0+0+2+1 = 6 (a repeated "red" counts once), ref pairs 2+2+1+2+1 = 8,
    # tp 2+0+0+1+1 = 4, hallucinated keys {fit} / 6
    assert (single["f1/tp"], single["f1/pred"], single["f1/ref"]) == (4, 6, 8)
    assert single["f1/hallucination_rate"] == 1 / 6

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        procs = mp.spawn(_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=False)
        deadline = time.monotonic() + 120
        while not procs.join(timeout=1):
            if time.monotonic() > deadline:
                for p in procs.processes:
                    p.kill()
                pytest.fail("distributed metric sync hung")
        per_rank = [dict(results[0]), dict(results[1])]
    for ranked in per_rank:
        assert ranked.keys() == single.keys()
        different = {k: (ranked[k], single[k]) for k in single if not _same(ranked[k], single[k])}
        assert not different
