"""`valley3 export --ckpt ... --out DIR`: a `valley3 fit` checkpoint written as the release's folder, with a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from valley3.cli import main
from valley3.models.export import load
from valley3.stages.reject_sample import load_stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """The tiny Valley3 model (Qwen3-VL + AuT) fitted for one step, its videos' audio interleaved at 2 fps."""
    from valley3.data.demo import make_demo

    root = tmp_path_factory.mktemp("export_run")
    make_demo(root / "demo_data", n_products=4, speech="synthetic")
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 1, "logger": False, "default_root_dir": str(root),
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"save_last": True}}]},
        "model": {"class_path": "valley3.stages.OmniStage", "init_args": {
            "model": str(ROOT / "configs/model/tiny_valley3.yaml"), "max_len": 512,
            "video": {"fps": 2, "audio_in_video": True}}},
        "data": {"class_path": "valley3.data.datamodules.OmniDataModule", "init_args": {
            "train": str(root / "demo_data/omni_train.jsonl"), "batch_size": 2}},
    }
    (root / "fit.yaml").write_text(json.dumps(config))
    main(["fit", "--config", str(root / "fit.yaml")])
    return root / "checkpoints/last.ckpt"


def test_export_command_writes_the_release_layout_and_prints_what_it_wrote(ckpt, tmp_path, capsys):
    out = tmp_path / "valley3-tiny"
    main(["export", "--ckpt", str(ckpt), "--out", str(out)])
    printed = capsys.readouterr().out
    assert f"wrote {out} (valley_omni layout)" in printed
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "preprocessor_config.json", "video_preprocessor_config.json"):
        assert (out / name).is_file() and name in printed
    assert "117 tensors" in printed and "pass use_audio_in_video=True" in printed
    assert "processor defaults: position_id_per_seconds=25, fps=2, use_audio_in_video=True" in printed
    stage = load_stage(ckpt)
    rebuilt = load(out)
    trained = stage.model.state_dict()
    assert rebuilt.state_dict().keys() == trained.keys()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in trained.items())
    assert json.loads((out / "config.json").read_text())["position_id_per_seconds"] == 25


def test_export_command_needs_a_checkpoint_and_an_output(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--out", "x"])
    assert "--ckpt" in capsys.readouterr().err
