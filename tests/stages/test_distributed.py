"""Scale: dummy inputs keep every tower in the graph, and 2 CPU ranks (DDP, FSDP2) train exactly like 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.stages import OmniStage
from valley3.stages.sharding import FSDPConfig

from ..conftest import tiny_omni
from .distributed_worker import STEPS, fit

ROOT = Path(__file__).resolve().parents[2]


def _image(name: str, path: str, answer: str) -> Sample:
    return Sample(name, [Turn("user", "<image>What is it?"), Turn("assistant", answer)], [MediaRef("image", path)])


def _audio(name: str, path: str, answer: str) -> Sample:
    return Sample(name, [Turn("user", "<audio>What is it?"), Turn("assistant", answer)], [MediaRef("audio", path)])


def _batches(stage: OmniStage, media: dict[str, str]) -> tuple[list[Batch], list[Batch], list[Batch]]:
    """Rank 0's batches (images only), rank 1's (audio only, then nothing) and one process's joint batches.
    The ranks' supervised token counts differ, so a mean of per-rank means would not equal the joint mean."""
    images = [[_image("red", media["red"], "Red.")],
              [_image("blue", media["blue"], "A tall blue box."), _image("red2", media["red"], "A red box.")]]
    audio = [_audio("tone", media["tone"], "A steady tone at four hundred and forty hertz, quite loud.")]
    collate = PadCollator(stage.processor.pad_id)
    batch = lambda samples: collate([stage.processor(s) for s in samples])
    rank1 = [batch(audio), Batch(torch.tensor(1))]  # step 2: every sample of rank 1 was unreadable
    return [batch(s) for s in images], rank1, [batch(images[0] + audio), batch(images[1])]


def _grads(stage: OmniStage, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    loss, _ = stage.model_step(batch)
    loss.backward()
    return loss, {name: p.grad for name, p in stage.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("present, idle", [("image", "audio"), ("audio", "vision")])
def test_a_missing_modality_still_reaches_its_tower_with_exactly_zero_gradient(media, present, idle):
    on, off = OmniStage(tiny_omni()), OmniStage(tiny_omni(dummy_inputs=False))
    sample = _image("x", media["red"], "Red.") if present == "image" else _audio("x", media["tone"], "A tone.")
    batch = PadCollator(on.processor.pad_id)([on.processor(sample)])
    (loss_on, grads_on), (loss_off, grads_off) = _grads(on, batch), _grads(off, batch)
    assert torch.equal(loss_on, loss_off)  # the loss is unchanged bit for bit
    tower = [name for name in grads_on if name.startswith(idle)]  # encoder and connector
    assert tower and all(grads_on[name] is not None and not grads_on[name].any() for name in tower)
    assert all(grads_off[name] is None for name in tower)  # what DDP would call an unused parameter
    for name in set(grads_on) - set(tower):
        assert torch.equal(grads_on[name], grads_off[name]), name


def test_dummy_inputs_run_only_in_training_and_only_for_a_tower_that_trains(media):
    def audio_calls(stage: OmniStage, train: bool = True, grad: bool = True) -> int:
        calls = []
        hook = stage.model.audio.register_forward_hook(lambda *_: calls.append(1))
        stage.model.train(train)
        with torch.set_grad_enabled(grad):
            stage.model_step(batch)
        hook.remove()
        return len(calls)

    stage = OmniStage(tiny_omni())
    batch = PadCollator(stage.processor.pad_id)([stage.processor(_image("x", media["red"], "Red."))])
    assert audio_calls(stage) == 1
    assert audio_calls(stage, grad=False) == 0 and audio_calls(stage, train=False) == 0  # eval, generation
    assert audio_calls(OmniStage(tiny_omni(), lr={"audio": 0, "audio_connector": 0})) == 0
    assert audio_calls(OmniStage(tiny_omni(), lr={"audio": 0})) == 1  # its connector still trains


def test_fsdp_mixed_precision_policy():
    assert FSDPConfig().policy("cpu").param_dtype is None  # auto: fp32 on CPU
    bf16 = FSDPConfig().policy("cuda")
    assert (bf16.param_dtype, bf16.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert FSDPConfig(mixed_precision="bf16").policy("cpu").param_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision must be"):
        FSDPConfig(mixed_precision="fp16").policy("cuda")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path, timeout: float = 240, module: str = "tests.stages.distributed_worker",
                   args: list[str] | None = None) -> dict:
    """Both ranks of `module` (default: distributed_worker with its files in `tmp_path`); a rank still running
    after `timeout` s is a hang."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "NODE_RANK": "0",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    if args is None:
        args = [str(tmp_path / "batches.pt"), str(tmp_path / "out.json"), str(tmp_path / "ckpt")]
    args = [sys.executable, "-m", module, *args]
    logs = [tmp_path / f"rank{rank}.log" for rank in range(2)]
    procs = [subprocess.Popen(args, cwd=ROOT, env={**env, "LOCAL_RANK": str(rank)}, stdout=log.open("w"),
                              stderr=subprocess.STDOUT) for rank, log in enumerate(logs)]
    return {"procs": procs, "logs": logs, "deadline": time.monotonic() + timeout}


def _wait(run: dict) -> None:
    for proc, log in zip(run["procs"], run["logs"]):
        try:
            proc.wait(timeout=max(1.0, run["deadline"] - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in run["procs"]:
                p.kill()
            pytest.fail(f"a rank hung; its log:\n{log.read_text()[-3000:]}")
        assert proc.returncode == 0, log.read_text()[-3000:]


def test_ranks_with_different_modalities_train_like_one_process(media, tmp_path):
    stage = OmniStage(tiny_omni())
    image_batches, audio_batches, joint = _batches(stage, media)
    torch.save({"rank0": image_batches, "rank1": audio_batches}, tmp_path / "batches.pt")
    run = _run_two_ranks(tmp_path)
    reference = fit(joint).losses  # one process on the global batch, while the ranks start
    _wait(run)
    out = json.loads((tmp_path / "out.json").read_text())
    assert len(reference) == STEPS and len(set(reference)) == STEPS  # the weights move between steps
    for strategy in ("ddp", "fsdp"):
        assert out[strategy] == pytest.approx(reference, abs=1e-4), strategy
    blocks = sum(isinstance(m, tuple(stage.model.block_classes)) for m in stage.model.modules())
    assert out["checkpointed_blocks"] == blocks and out["sharded_units"] == blocks + 1  # + the model itself
    # Resumed from the sharded checkpoint of step 2 (a folder of per-rank files), step 3 is the saving run's step 3.
    assert out["checkpoint_is_sharded"] and out["fsdp_resumed"] == pytest.approx(out["fsdp"][2:], abs=1e-6)
    # The same folder initialises a later stage (init_from): its loss on step 3's batch is the run's step 3 loss.
    with torch.no_grad():
        loss, _ = OmniStage(tiny_omni(seed=2), init_from=str(tmp_path / "ckpt/epoch=0-step=2.ckpt")).model_step(joint[0])
    assert float(loss) == pytest.approx(out["fsdp"][2], abs=1e-4)


def test_fsdp_ranks_with_and_without_video_call_the_vision_tower_alike_and_train_like_one_process(media, tmp_path):
    # A composed model used to encode a batch's images and its video frames in two tower calls: under FSDP each
    # call all-gathers the tower, so a rank with a video waited for ever on a rank without one.
    from tests.data.test_video import _write

    stage = OmniStage(tiny_omni(), video={"num_frames": 4})
    clip = _write(tmp_path / "clip.mp4", audio=False)
    video = Sample("clip", [Turn("user", "<video>What happens?"), Turn("assistant", "Colours change.")],
                   [MediaRef("video", clip)])
    collate = PadCollator(stage.processor.pad_id)
    batch = lambda samples: collate([stage.processor(s) for s in samples])
    red, blue = _image("red", media["red"], "Red."), _image("blue", media["blue"], "A tall blue box.")
    ranks = {"rank0": [batch([red, video])], "rank1": [batch([blue])]}
    assert ranks["rank0"][0].media.has_videos and not ranks["rank1"][0].media.has_videos
    torch.save(ranks, tmp_path / "batches.pt")
    run = _run_two_ranks(tmp_path, module="tests.stages.fsdp_media_worker",
                         args=[str(tmp_path / "batches.pt"), str(tmp_path / "out.json")])
    reference = fit([batch([red, video, blue])]).losses
    _wait(run)
    assert json.loads((tmp_path / "out.json").read_text()) == pytest.approx(reference, abs=1e-4)
