"""`valley3 inspect`: parameter and token tables computed from the components on the meta device."""

from __future__ import annotations

from pathlib import Path

import pytest

from valley3.data.media.image import tile_grid
from valley3.inspection import load, main, param_table, token_rows

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


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _qwen3_vl_params(cfg: dict) -> tuple[int, int]:
    """(ViT with mergers, language model with lm_head) of a Qwen3VLConfig, from its shapes."""
    t, v = cfg["text_config"], cfg["vision_config"]
    h, heads, kv, hd = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
    layer = (_linear(h, heads * hd, False) + 2 * _linear(h, kv * hd, False) + _linear(heads * hd, h, False)
             + 2 * hd + 3 * _linear(h, t["intermediate_size"], False) + 2 * h)  # q/k norms, MLP, two RMSNorms
    text = 2 * t["vocab_size"] * h + t["num_hidden_layers"] * layer + h  # embeddings and untied head, final norm
    d, mlp = v["hidden_size"], v["intermediate_size"]
    block = 4 * d + _linear(d, 3 * d) + _linear(d, d) + _linear(d, mlp) + _linear(mlp, d)
    merged = d * v["spatial_merge_size"] ** 2
    merger = _linear(merged, merged) + _linear(merged, v["out_hidden_size"])
    patch = _linear(3 * v["temporal_patch_size"] * v["patch_size"] ** 2, d)
    vision = (patch + v["num_position_embeddings"] * d + v["depth"] * block + 2 * d + merger
              + len(v["deepstack_visual_indexes"]) * (2 * merged + merger))  # DeepStack mergers norm after the merge
    return vision, text


def _aut_params(a: dict) -> int:
    """Qwen3-Omni's audio encoder: three 3x3 convs, a projection of the flattened conv output, Whisper-style
    layers, and the two output projections."""
    d, ffn, conv = a["d_model"], a["encoder_ffn_dim"], a["downsample_hidden_size"]
    freq = a["num_mel_bins"]
    for _ in range(3):
        freq = (freq + 1) // 2
    convs = _linear(9, conv) + 2 * _linear(9 * conv, conv) + conv * freq * d
    layer = 4 * _linear(d, d) + 4 * d + _linear(d, ffn) + _linear(ffn, d)
    return convs + a["encoder_layers"] * layer + 2 * d + _linear(d, d) + _linear(d, a["output_dim"])


def test_valley3_8b_counts_per_component_match_the_shapes(capsys):
    from valley3.models.presets import AUDIO, DECODERS

    assert main(["--config", str(MODEL / "valley3_8b.yaml")]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[2].replace(",", "").isdigit():
            rows[cells[0]] = int(cells[2].replace(",", ""))
    vision, text = _qwen3_vl_params(DECODERS["qwen3-vl-8b"])
    audio = AUDIO["aut"]
    width = DECODERS["qwen3-vl-8b"]["text_config"]["hidden_size"]
    hidden = 4 * audio["output_dim"]  # the release's 2048 -> 8192 -> 8192 -> 4096, then LayerNorm
    connector = _linear(audio["output_dim"], hidden) + _linear(hidden, hidden) + _linear(hidden, width) + 2 * width
    assert rows == {"vision": vision, "audio": _aut_params(audio), "audio_connector": connector, "decoder": text,
                    "total": vision + text + _aut_params(audio) + connector}
    assert round((vision + text) / 1e9, 2) == 8.77  # Qwen3-VL-8B-Instruct's published size


def _experiment(tmp_path, model: Path, **stage_args) -> Path:
    import yaml

    spec = {"model": {"class_path": "valley3.stages.OmniStage", "init_args": {"model": str(model), **stage_args}}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _table(out: str) -> dict[str, tuple[str, str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    return {c[0]: (c[1], c[2]) for c in cells if len(c) == 3}


def test_an_experiment_prices_images_with_its_own_max_tiles(tmp_path, capsys):
    main(["--config", str(_experiment(tmp_path, MODEL / "valley2_7b.yaml", max_tiles=4))])
    rows = _table(capsys.readouterr().out)
    assert rows["image 1536x1536"] == ("5 (2x2 + thumbnail)", "980")
    main(["--config", str(_experiment(tmp_path, MODEL / "valley2_7b.yaml"))])  # OmniStage's default: no tiling
    assert _table(capsys.readouterr().out)["image 1536x1536"][1] == "196"
    main(["--config", str(MODEL / "valley2_7b.yaml"), "--max-tiles", "4"])  # the flag wins
    assert _table(capsys.readouterr().out)["image 1536x1536"][1] == "980"


def test_qwen3_vl_video_costs_half_a_frame_pair_per_frame_and_follow_the_experiments_sampling(tmp_path):
    from valley3.inspection import stage_settings

    config = _experiment(tmp_path, MODEL / "valley3_8b.yaml", video={"num_frames": 6})
    module, _, _ = load(config)
    max_tiles, video = stage_settings(config)
    rows = {row.item: row.tokens for row in token_rows(module, video=video)}
    decoder = module.decoder
    per_pair = decoder.image_num_tokens(*decoder.input_size(720, 1280))  # 2 frames in one temporal patch
    assert rows["video frame 1280x720 (2-frame patches)"] == per_pair / 2
    assert rows["video 1280x720, 60 s: 6 frames (uniform, max 16)"] == 3 * per_pair
    assert max_tiles == 1


def test_a_stage_config_is_a_clear_error(capsys):
    with pytest.raises(SystemExit, match=r"s0_audio_align\.yaml: a stage config \(valley3\.stages\.AudioAlignStage\) "
                                         r"without a model"):
        main(["--config", str(ROOT / "configs/stage/s0_audio_align.yaml")])


def test_components_given_by_local_checkpoint_folders_are_built_from_their_configs_without_weights(tmp_path):
    # A user points `path:` at a downloaded checkpoint (Qwen3-VL-8B, SigLIP); transformers refuses from_pretrained on
    # the meta device, so inspect used to fail with its "anti-pattern" error instead of printing the table.
    import yaml
    from transformers import AutoTokenizer

    from valley3.assets import tiny_tokenizer_dir
    from valley3.models.decoders import HFDecoder, Qwen3VLDecoder
    from valley3.models.vision import SigLIPEncoder

    parts = {"decoder": HFDecoder("tiny-qwen3"), "vision": SigLIPEncoder("tiny-siglip"),
             "qwen3_vl": Qwen3VLDecoder("tiny-qwen3-vl")}
    for name, part in parts.items():
        part.model.save_pretrained(tmp_path / name)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir()).save_pretrained(tmp_path / "decoder")
    at = lambda class_path, folder: {"class_path": class_path, "init_args": {"path": str(tmp_path / folder)}}
    composed = {"class_path": "valley3.models.OmniModel", "init_args": {
        "decoder": at("valley3.models.decoders.HFDecoder", "decoder"),
        "vision": at("valley3.models.vision.SigLIPEncoder", "vision"),
        "vision_connector": {"class_path": "valley3.models.connectors.MLPConnector"}}}
    qwen = at("valley3.models.decoders.Qwen3VLDecoder", "qwen3_vl")
    for spec, expected in [(composed, {"decoder": parts["decoder"], "vision": parts["vision"]}),
                           (qwen, {"qwen3_vl": parts["qwen3_vl"]})]:
        config = tmp_path / "model.yaml"
        config.write_text(yaml.safe_dump(spec))
        module, _, _ = load(config)
        assert all(p.is_meta for p in module.parameters())  # shapes only: no weights read
        built = dict(module.named_children()) if "decoder" in expected else {"qwen3_vl": module}
        for name, part in expected.items():
            assert sum(p.numel() for p in built[name].parameters()) == sum(p.numel() for p in part.parameters())


def test_a_path_that_is_not_a_local_folder_is_refused_before_any_download(tmp_path):
    from valley3.models.decoders import HFDecoder

    with pytest.raises(FileNotFoundError, match="Qwen/Qwen3-8B: not a local checkpoint folder"):
        HFDecoder(path="Qwen/Qwen3-8B")  # a hub repo id: transformers would download it
