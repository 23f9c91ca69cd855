"""Videos of two sizes in one batch (720x480 beside 1280x720, here at 96x64 and 128x72): Qwen3-VL and a composed
native-resolution model train, test and predict through a real Trainer."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch

from valley3.data.datamodules import VideoDataModule
from valley3.data.datamodules.base import SampleDataset
from valley3.data.packing import PackingCollator
from valley3.models import OmniModel
from valley3.stages import OmniStage


def _write_video(path, width, height, n=4, fps=4):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = np.full((height, width, 3), 30 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    clips = [_write_video(root / "dvd.mp4", 96, 64), _write_video(root / "hd.mp4", 128, 72)]
    records = [{"id": f"v{i}", "messages": [{"role": "user", "content": "<video>What is shown?"},
                                            {"role": "assistant", "content": "A grey clip."}], "videos": [clip]}
               for i, clip in enumerate(clips)]
    path = root / "videos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _qwen3_vl() -> OmniModel:
    from valley3.models.decoders import Qwen3VLDecoder

    return OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", min_pixels=32 * 32 * 2, max_pixels=32 * 32 * 12))


def _composed() -> OmniModel:
    from valley3.models.decoders import HFDecoder
    from valley3.models.vision import QwenViTEncoder

    return OmniModel(HFDecoder("tiny-qwen3"), vision=QwenViTEncoder("tiny-qwen2.5-vit", image_size=32))


@pytest.mark.parametrize("build", [_qwen3_vl, _composed], ids=["qwen3_vl", "composed"])
def test_a_batch_of_two_video_sizes_trains_tests_and_predicts(build, data, tmp_path):
    torch.manual_seed(0)
    stage = OmniStage(build(), video={"num_frames": 3}, max_new_tokens=2)
    dm = VideoDataModule(train=data, test=data, predict=data, batch_size=2)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(stage, dm)
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/loss"])
    # Both clips really are in one batch, at two sizes.
    batch = next(iter(dm.test_dataloader()))
    assert batch.media.video_frames.tolist() == [3, 3]
    assert len({tuple(frame.shape) for frame in batch.media.video_pixels}) == 2
    trainer.test(stage, dm)
    assert torch.isfinite(trainer.callback_metrics["test/loss"])
    predictions = [record for batch in trainer.predict(stage, dm) for record in batch]
    assert [p["id"] for p in predictions] == ["v0", "v1"]
    # Packed into one row, the two sizes still pass (the packing collator groups media as the pad collator does).
    examples = [SampleDataset(dm.read("test"), stage.processor)[i] for i in range(2)]
    loss, count = stage.model_step(PackingCollator(stage.processor.pad_id)([examples]))
    assert torch.isfinite(loss) and int(count) > 0
