"""HF-format export: bit-exact round trips loaded in a fresh process, shards, no pickle, the valley_omni layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen3VLForConditionalGeneration

import valley3
from valley3.data.batch import Media
from valley3.data.collate import PadCollator
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel
from valley3.models.audio.aut import AuTEncoder
from valley3.models.decoders import Qwen3VLDecoder
from valley3.models.export import export, load
from valley3.stages.base import build_processor

from ..conftest import tiny_omni

ROOT = Path(__file__).resolve().parents[2]
# Loads exports in a process of its own, where unpickling and remote code are made to fail, and writes each
# model's logits and every tensor of its state back as safetensors. Arguments: (folder, batch, out) triples.
_LOADER = """
import pickle, sys, torch, transformers.dynamic_module_utils as dyn
from safetensors.torch import load_file, save_file
def refuse(*args, **kwargs):
    raise AssertionError("export loading must not unpickle or run remote code")
pickle.load = pickle.loads = torch.load = dyn.get_class_from_dynamic_module = refuse
from valley3.data.batch import Media
from valley3.models.export import load
for folder, batch, out in zip(*[iter(sys.argv[1:])] * 3):
    model = load(folder).eval()
    inputs = load_file(batch)
    with torch.no_grad():
        logits = model(inputs.pop("input_ids"), inputs.pop("attention_mask"), media=Media(**inputs))
    state = {"state." + name: t.clone() for name, t in model.state_dict().items()}
    save_file({"logits": logits.contiguous(), **state}, out)
"""


def _tiny_vl_omni() -> OmniModel:
    """Valley3's shape in miniature: Qwen3-VL (ViT inside the decoder, tied embeddings) + AuT + the audio MLP."""
    torch.manual_seed(0)
    return OmniModel(decoder=Qwen3VLDecoder("tiny-qwen3-vl"), audio=AuTEncoder("tiny-aut"))


def _batch(model: OmniModel, media: dict[str, str], audio: bool = True) -> dict[str, torch.Tensor]:
    """The model inputs of one sample as flat tensors (what the loading process reads from a safetensors file)."""
    processor = build_processor(model)
    prompt = "<image>What is it?" + (" Listen: <audio>" if audio else "")
    refs = [MediaRef("image", media["red"])] + ([MediaRef("audio", media["tone"])] if audio else [])
    sample = Sample("s", [Turn("user", prompt), Turn("assistant", "A red tone.")], refs)
    batch = PadCollator(processor.pad_id)([processor(sample)])
    pictures = {k: v for k, v in vars(batch.media).items() if v is not None}
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, **pictures}


def _logits(model: OmniModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    media = Media(**{k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")})
    return model(batch["input_ids"], batch["attention_mask"], media=media)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, media) -> dict[str, tuple[OmniModel, dict, Path, dict]]:
    """Both tiny models exported (the plain one in 100 KB shards) and loaded back in ONE fresh process:
    {layout: (model, batch, folder, what the other process loaded)}."""
    root = tmp_path_factory.mktemp("exports")
    models = {"plain": tiny_omni(), "valley_omni": _tiny_vl_omni()}
    args, out = [], {}
    for name, model in models.items():
        batch = _batch(model, media)
        folder = export(model, root / name, max_shard_size="100KB" if name == "plain" else "5GB")
        save_file({k: v.contiguous() for k, v in batch.items()}, root / f"{name}.batch.safetensors")
        args += [str(folder), str(root / f"{name}.batch.safetensors"), str(root / f"{name}.out.safetensors")]
        out[name] = (model, batch, folder)
    source = str(Path(valley3.__file__).parents[1])  # the valley3 this process tests, not another install's
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([source, str(ROOT)]),
           "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _LOADER, *args], check=True, cwd=ROOT, env=env)
    return {name: (*value, load_file(root / f"{name}.out.safetensors")) for name, value in out.items()}


def _assert_round_trip(model: OmniModel, batch: dict, loaded: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert {k.removeprefix("state.") for k in loaded if k != "logits"} == set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded["state." + name], tensor), name
    with torch.no_grad():
        assert torch.equal(loaded["logits"], _logits(model.eval(), batch))


def _assert_no_pickle(folder: Path) -> None:
    """Every file is JSON or a safetensors file (an 8-byte header length, then a JSON header)."""
    for file in folder.iterdir():
        data = file.read_bytes()
        if file.suffix == ".json":
            json.loads(data)
        else:
            assert file.suffix == ".safetensors", file.name
            json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])


def test_plain_export_round_trips_bit_exact_across_shards(exported):
    model, batch, folder, loaded = exported["plain"]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 3 and set(index["weight_map"].values()) == {p.name for p in shards}
    for shard in map(load_file, shards):  # within the limit, unless one tensor alone passes it
        assert len(shard) == 1 or sum(t.numel() * t.element_size() for t in shard.values()) <= 100_000
    config = json.loads((folder / "config.json").read_text())["valley3"]
    assert config["layout"] == "plain" and config["model"]["class_path"] == "valley3.models.omni.OmniModel"
    # The tiny decoder ties its embeddings: one copy on disk, the tie restored on load.
    assert config["tied"] == {"decoder.model.lm_head.weight": "decoder.model.model.embed_tokens.weight"}
    assert "decoder.model.lm_head.weight" not in index["weight_map"]
    _assert_no_pickle(folder)
    _assert_round_trip(model, batch, loaded)
    rebuilt = load(folder)
    assert rebuilt.decoder.model.lm_head.weight is rebuilt.decoder.model.model.embed_tokens.weight


def test_load_skips_the_random_init_of_weights_it_then_reads(exported, monkeypatch):
    # Random init is all waste before a strict load: 39 s for a 1.7B decoder on 2 cores, minutes at 8B.
    _, _, folder, _ = exported["plain"]
    calls = []
    real = torch.nn.init.kaiming_uniform_  # what nn.Linear's reset_parameters calls
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.nn.Linear(2, 2)
    assert calls == [1]  # the probe sees a plain build
    rebuilt = load(folder)
    assert calls == [1]
    assert rebuilt.decoder.model.lm_head.weight is rebuilt.decoder.model.model.embed_tokens.weight  # re-tied


def test_description_is_the_yaml_model_with_connector_widths_left_to_omni_model():
    from valley3.inspection import load as load_yaml
    from valley3.models.export import _build
    from valley3.models.init_args import describe

    model, _, _ = load_yaml(ROOT / "configs" / "model" / "tiny_omni.yaml")  # jsonargparse, on the meta device
    spec = describe(model)
    connector = spec["init_args"]["audio_connector"]
    assert connector == {"class_path": "valley3.models.connectors.audio_mlp.AudioMLPConnector",
                         "init_args": {"hidden_dim": None, "depth": 3}}  # the subclass, not MLPConnector's args
    assert spec["init_args"]["decoder"]["init_args"]["preset"] == "tiny-qwen3"
    with torch.device("meta"):
        rebuilt = _build(json.loads(json.dumps(spec)))
    assert describe(rebuilt) == spec
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_load_refuses_classes_outside_valley3(tmp_path):
    folder = export(tiny_omni(), tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    config["valley3"]["model"]["init_args"]["decoder"]["class_path"] = "os.system"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="os.system"):
        load(folder)


def test_export_refuses_a_tokenizer_whose_placeholder_ids_differ_from_the_model(tmp_path):
    model = tiny_omni()
    model.token_ids = {"image": 6, "video": 5, "audio": 9}  # bound to some other tokenizer
    with pytest.raises(ValueError, match="placeholder ids"):
        export(model, tmp_path / "export")


def test_valley_omni_export_round_trips_and_names_tensors_as_the_release(exported):
    model, batch, folder, loaded = exported["valley_omni"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "valley_omni"
    assert config["architectures"] == ["ValleyOmniForConditionalGeneration"]
    assert config["audio_encoder_type"] == "qwen3_omni_moe" and config["audio_config"]["output_dim"] == 32
    assert (config["sample_rate"], config["feature_dim"], config["connector_hidden_size"]) == (16000, 80, 4 * 32)
    assert config["tm_rope_sections"] == [4, 2, 2] and config["position_id_per_seconds"] == 25
    assert config["text_config"]["hidden_size"] == 64 and config["vision_config"]["deepstack_visual_indexes"] == [0]
    # The tiny preset ties; the release cannot tie (its tied keys are a list), so lm_head is written and untied.
    assert config["tie_word_embeddings"] is False and isinstance(config["position_id_per_seconds"], int)
    ids = {k: config[f"{k}_token_id"] for k in ("image", "video", "audio", "vision_start", "vision_end",
                                                  "audio_start", "audio_end")}
    # The project's tiny tokenizer: the placeholders the model was bound to, and their brackets.
    assert ids == {"image": 5, "video": 6, "audio": 9, "vision_start": 3, "vision_end": 4, "audio_start": 7,
                   "audio_end": 8}
    assert {k: ids[k] for k in ("image", "video", "audio")} == model.token_ids
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessor["processor_class"] == "ValleyOmniProcessor"
    assert (preprocessor["patch_size"], preprocessor["merge_size"], preprocessor["feature_size"]) == (16, 2, 80)
    assert preprocessor["size"] == {"shortest_edge": 65536, "longest_edge": 16777216}
    names = set(load_file(folder / "model.safetensors"))
    audio = {n for n in names if n.startswith(("model.audio_encoder.encoder.", "model.audio_connector."))}
    assert names - audio == set(model.decoder.model.state_dict())  # Qwen3-VL's own names, lm_head included
    assert {n.split(".")[2] for n in audio if n.startswith("model.audio_connector.")} == {
        "proj_in", "proj_mid", "proj_out", "ln"}
    assert {n.removeprefix("model.audio_encoder.encoder.") for n in audio if "audio_encoder" in n} == set(
        model.audio.model.state_dict())
    _assert_no_pickle(folder)
    _assert_round_trip(model, batch, loaded)


def test_valley_omni_export_loads_into_transformers_qwen3_vl_with_equal_logits(exported, media):
    model, _, folder, _ = exported["valley_omni"]
    batch = _batch(model.eval(), media, audio=False)
    hf, info = Qwen3VLForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] == set() and info["mismatched_keys"] == set()
    assert info["unexpected_keys"] and all(
        k.startswith(("model.audio_encoder.encoder.", "model.audio_connector.")) for k in info["unexpected_keys"])
    # transformers takes Qwen's patch rows, the grid and which tokens are image tokens; it computes its own mRoPE.
    rows, grid = model.decoder.patchify(batch["pixel_values"])
    ids = batch["input_ids"]
    theirs = {"input_ids": ids, "attention_mask": batch["attention_mask"], "pixel_values": rows,
              "image_grid_thw": torch.tensor([grid]), "mm_token_type_ids": (ids == model.token_ids["image"]).long()}
    with torch.no_grad():
        assert torch.equal(_logits(model, batch), hf.eval()(**theirs).logits)


def test_valley3_8b_config_has_the_release_defaults():
    """On the meta device: the real shapes give the release's own defaults (ValleyOmniConfig's signature)."""
    from valley3.inspection import load as load_yaml
    from valley3.models import valley_omni

    model, _, _ = load_yaml(ROOT / "configs" / "model" / "valley3_8b.yaml")
    assert valley_omni.applies(model)
    ids = dict.fromkeys(("image", "video", "audio", "vision_start", "vision_end", "audio_start", "audio_end"), 0)
    config = valley_omni.config(model, ids)
    assert (config["connector_hidden_size"], config["feature_dim"], config["sample_rate"]) == (8192, 128, 16000)
    assert config["tm_rope_sections"] == [24, 20, 20] and config["position_id_per_seconds"] == 25
    assert config["audio_config"]["output_dim"] == 2048 and config["text_config"]["hidden_size"] == 4096
    assert config["text_config"]["vocab_size"] == 151936 and config["vision_config"]["out_hidden_size"] == 4096
    assert valley_omni.preprocessor_config(model)["feature_size"] == 128
