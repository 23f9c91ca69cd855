"""`valley3 inspect`: parameter and token tables computed from the components on the meta device."""

from __future__ import annotations

from pathlib import Path

import pytest

from valley3.data.media.image import tile_grid
from valley3.inspect import load, main, param_table, token_rows

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "configs" / "model"


def _tokens(config: Path) -> dict[str, float]:
    module, _, _ = load(config)
    return {row.item: row.tokens for row in token_rows(module)}


def test_valley2_shape_costs_196_tokens_per_tile_and_at_most_1960_per_image():
    tokens = _tokens(MODEL / "valley2_7b.yaml")
    assert tokens["tile 384x384"] == 196
    images = {item: n for item, n in tokens.items() if item.startswith("image")}
    assert tokens["image 1536x1536"] == 1960  # 3x3 tiles + thumbnail
    assert tokens["image 384x384"] == 196  # one tile, no thumbnail
    assert all(n <= 1960 for n in images.values()) and all(n % 196 == 0 for n in images.values())
    grid = tile_grid(768, 1152, 384, 9)
    assert tokens["image 768x1152"] == (grid.rows * grid.cols + 1) * 196
    assert tokens["video frame 1280x720"] == 196  # frames are never tiled


@pytest.mark.parametrize("config,rate", [("whisper_large_v3", 25.0), ("aut", 13.0)])
def test_audio_rows_show_each_encoders_own_rate(config, rate):
    tokens = _tokens(MODEL / "audio" / f"{config}.yaml")
    assert [n for item, n in tokens.items() if item.startswith("audio")] == [rate]


def test_native_resolution_images_are_not_tiled():
    module, _, _ = load(MODEL / "vision" / "qwen_vit.yaml")
    rows = {row.item.split(" ->")[0]: row for row in token_rows(module)}
    assert rows["image 384x384"].tokens == 14 * 14 and rows["image 384x384"].tiles == 0
    assert rows["image 768x1152"].tokens == 27 * 41  # 756x1148 px, one token per 28x28 px
    assert rows["image 1536x1536"].tokens <= 1280  # scaled down to max_tokens


def test_experiment_lr_marks_frozen_components(capsys):
    module, lr, default_lr = load(ROOT / "experiments" / "demo" / "quickstart.yaml")
    assert default_lr == 3e-3 and lr == {}
    table = param_table(module, {"vision": 0.0}, default_lr)
    vision = next(line for line in table.splitlines() if line.startswith("| vision |"))
    assert vision.split("|")[4].strip() == "0"  # trainable count
    assert main(["--config", str(MODEL / "tiny_omni.yaml"), "--lr", "decoder=0"]) == 0
    out = capsys.readouterr().out
    assert "| decoder | HFDecoder | 139,648 | 0 | 0 |" in out  # frozen by --lr
    assert "| audio, per second (WhisperEncoder) | - | 25.0 |" in out
