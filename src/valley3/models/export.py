"""HF-format export and load of an OmniModel: safetensors shards, config.json, tokenizer (valley_omni layout too)."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from valley3.models import valley_omni
from valley3.models.init_args import describe
from valley3.models.weights import build_without_init

FORMAT_VERSION = 1
INDEX = "model.safetensors.index.json"
# Files a tokenizer folder may hold; weights and model configs are never copied.
_TOKENIZER_FILES = ("tokenizer*.json", "tokenizer.model", "vocab.*", "merges.txt", "special_tokens_map.json",
                    "added_tokens.json", "chat_template.*", "*.tiktoken", "spiece.model")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def export(
    model: nn.Module,
    out_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike | None = None,
    max_shard_size: int | str = "5GB",
    tokenizer: Any = None,
    chat_template: str | None = None,
    fps: float | None = None,
    audio_in_video: bool = False,
) -> Path:
    """Write `model` as an HF folder: config.json, safetensors weights (sharded past `max_shard_size`), tokenizer.

    A Qwen3-VL decoder + AuT + Valley3's audio connector is written in the release's `valley_omni` layout, which the
    release's code loads and serves unchanged: its config fields, types and tensor names (every weight written, tied
    ones too, and `tie_word_embeddings` false), preprocessor_config.json and video_preprocessor_config.json, and a
    tokenizer carrying the named tokens and call defaults its `ValleyOmniProcessor` reads. Any other OmniModel is
    written in valley3's plain layout (its own tensor names). Both carry valley3's model description in config.json
    under "valley3", from which `load` rebuilds the model.

    Args:
        model: an OmniModel.
        out_dir: the folder to write (created; earlier weight files in it are removed).
        tokenizer_dir: where the tokenizer files are copied from; defaults to the decoder's tokenizer folder.
        max_shard_size: the most bytes per safetensors file, as an int or "5GB", "200MB", "10KiB".
        tokenizer: a loaded tokenizer to save instead (e.g. the processor's, with the special tokens it added).
        chat_template: a Jinja chat template to save with the tokenizer (`ChatTemplate.jinja()` renders valley3's).
        fps: the frame rate videos were sampled at (`VideoSpec.fps`), for the release processor's time axis.
        audio_in_video: whether the release processor interleaves a video's audio by default (`VideoSpec`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("model*.safetensors"), out / INDEX]:
        stale.unlink(missing_ok=True)
    layout = "valley_omni" if valley_omni.applies(model) else "plain"
    extra = valley_omni.tokenizer_kwargs(model, fps, audio_in_video) if layout == "valley_omni" else {}
    tok = _write_tokenizer(model, out, tokenizer_dir, tokenizer, extra, chat_template)
    ids = {kind: tok.convert_tokens_to_ids(token) for kind, token in model.media_tokens.items()}
    if model.token_ids and any(ids[kind] != model.token_ids[kind] for kind in model.token_ids):
        raise ValueError(f"the tokenizer's placeholder ids {ids} differ from the model's {model.token_ids}; "
                         "pass the processor's tokenizer (export(..., tokenizer=processor.tokenizer))")
    state, tied = _unique(model.state_dict())
    meta = {
        "format_version": FORMAT_VERSION,
        "layout": layout,
        "model": describe(model),
        "token_ids": dict(model.token_ids) or None,
        "vocab_size": model.decoder.vocab_size,
        "tied": tied,
    }
    if layout == "valley_omni":
        config = _valley_omni_config(model, tok, ids, out)
        # The release loads lm_head by its own name, tied or not: tied tensors are written under every name.
        state = {valley_omni.to_release(k): v for k, v in _untie(state, tied).items()}
        meta["tied"] = {}
    else:
        config = {"architectures": [type(model).__name__], "model_type": "valley3"}
    config["valley3"] = meta
    (out / "config.json").write_text(json.dumps(config, indent=2))
    _write_weights(state, out, _parse_size(max_shard_size))
    return out


def _valley_omni_config(model: nn.Module, tok: Any, ids: dict[str, int], out: Path) -> dict[str, Any]:
    """The release's config.json (returned) and processor configs (written), once the token ids are checked."""
    brackets = {kind: tok.convert_tokens_to_ids(t) for kind, t in valley_omni.QWEN_BRACKETS.items()}
    missing = [valley_omni.QWEN_BRACKETS[k] for k, i in brackets.items() if i is None or i == tok.unk_token_id]
    if missing:
        raise ValueError(f"the tokenizer lacks {missing}, which the valley_omni config names")
    valley_omni.check_release_ids({**ids, **brackets})
    for name, write in (("preprocessor_config.json", valley_omni.preprocessor_config),
                        ("video_preprocessor_config.json", valley_omni.video_preprocessor_config)):
        (out / name).write_text(json.dumps(write(model), indent=2))
    return valley_omni.config(model, {**ids, **brackets})


def load(path: str | os.PathLike, trusted: tuple[str, ...] = ("valley3.",)) -> nn.Module:
    """The OmniModel an `export` folder describes, with its weights. Reads JSON and safetensors only: no pickle,
    no code from the folder, and only classes from modules under the `trusted` prefixes are imported."""
    folder = Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: not found; is {folder} an export folder?")
    meta = json.loads(config_file.read_text()).get("valley3")
    if not meta:
        raise ValueError(f"{config_file} has no 'valley3' entry: not written by valley3.models.export")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{config_file}: format_version {meta.get('format_version')}, this code reads {FORMAT_VERSION}")
    spec = meta["model"]
    _check_class_paths(spec, config_file, trusted)
    decoder = spec["init_args"]["decoder"]
    module_name, _, cls_name = decoder["class_path"].rpartition(".")
    decoder_cls = getattr(importlib.import_module(module_name), cls_name)
    if any(folder.glob("tokenizer*")) and "tokenizer" in inspect.signature(decoder_cls).parameters:
        decoder.setdefault("init_args", {})["tokenizer"] = str(folder)  # the copy travels with the weights
    model = build_without_init(lambda: _build(spec))  # every weight is read from the folder below
    if meta.get("token_ids"):
        model.bind_tokenizer(meta["token_ids"], meta["vocab_size"])
    else:
        model.decoder.resize_vocab(meta["vocab_size"])
    state = _read_weights(folder)
    if meta["layout"] == "valley_omni":
        state = {valley_omni.from_release(k): v for k, v in state.items()}
    for alias, kept in meta["tied"].items():
        state[alias] = state[kept]
    model.load_state_dict(state, strict=True)
    return model


def _build(spec: dict[str, Any]) -> nn.Module:
    """Instantiate a description with jsonargparse, exactly as a model YAML is."""
    from jsonargparse import ArgumentParser

    from valley3.models.omni import OmniModel

    parser = ArgumentParser()
    parser.add_subclass_arguments(OmniModel, "obj")
    return parser.instantiate_classes(parser.parse_object({"obj": spec})).obj


def _check_class_paths(spec: Any, where: Path, trusted: tuple[str, ...]) -> None:
    if isinstance(spec, dict):
        path = spec.get("class_path")
        if path is not None and not str(path).startswith(trusted):
            raise ValueError(f"{where}: class_path {path!r} is outside {trusted}; refusing to import it")
        for value in spec.values():
            _check_class_paths(value, where, trusted)
    elif isinstance(spec, list):
        for value in spec:
            _check_class_paths(value, where, trusted)


def _write_tokenizer(model: nn.Module, out: Path, tokenizer_dir, tokenizer, init_kwargs: dict[str, Any],
                     chat_template: str | None) -> Any:
    """Copy (or save) the tokenizer into `out` and return it, loaded back from there; `init_kwargs` (named tokens,
    processor defaults) and `chat_template` are saved with it."""
    from transformers import AutoTokenizer

    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    else:
        src = Path(tokenizer_dir or model.decoder.tokenizer_path)
        files = [p for p in src.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, g) for g in _TOKENIZER_FILES)]
        if not files:
            raise FileNotFoundError(f"{src}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        for file in files:
            if file.resolve() != (out / file.name).resolve():
                shutil.copy2(file, out / file.name)
    tok = AutoTokenizer.from_pretrained(out, **init_kwargs)
    vocab = tok.get_vocab()
    missing = [t for t in model.media_tokens.values() if t not in vocab]
    if missing:
        raise ValueError(f"the tokenizer in {out} lacks {missing}; pass the processor's tokenizer, which adds them")
    if init_kwargs or chat_template is not None:
        if chat_template is not None:
            tok.chat_template = chat_template
        tok.save_pretrained(out)
    return tok


def _unique(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state without aliases (tied weights share storage, which safetensors refuses) and {alias: kept name}."""
    kept: dict[tuple, str] = {}
    unique, tied = {}, {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tuple(tensor.stride()), tensor.dtype)
        if key in kept:
            tied[name] = kept[key]
        else:
            kept[key] = name
            unique[name] = tensor
    return unique, tied


def _untie(state: dict[str, torch.Tensor], tied: dict[str, str]) -> dict[str, torch.Tensor]:
    """Every name in state-dict order, an alias as its own copy."""
    out = dict(state)
    for alias, kept in tied.items():
        out[alias] = state[kept].clone()
    return out


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)\s*", size.upper())
    if match is None:
        raise ValueError(f"max_shard_size {size!r}: expected an int or e.g. '5GB', '200MB', '10KiB'")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _write_weights(state: dict[str, torch.Tensor], out: Path, limit: int) -> None:
    """Tensors in order, a new shard whenever the next one would pass `limit` (a larger tensor gets its own)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = total = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = tensor.detach().contiguous()
        size, total = size + nbytes, total + nbytes
    if len(shards) == 1:
        save_file(shards[0], out / "model.safetensors", metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, out / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / INDEX).write_text(json.dumps(index, indent=2))


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / INDEX).is_file():
        files = sorted(set(json.loads((folder / INDEX).read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{folder}: neither model.safetensors nor {INDEX}")
    state = {}
    for file in files:
        with safe_open(folder / file, framework="pt") as f:
            state.update({name: f.get_tensor(name) for name in f.keys()})  # noqa: SIM118 (not a dict)
    return state
