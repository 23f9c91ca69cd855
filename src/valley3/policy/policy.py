"""Policy: generate (n samples per prompt, stop strings, seeds, log-probs) and per-token log-probs for post-training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser
from lightning.fabric.utilities.apply_func import move_data_to_device

from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.packing import PackingCollator
from valley3.data.processor import OmniProcessor, VideoSpec
from valley3.models.decoding import Sampling, decode
from valley3.models.omni import OmniModel
from valley3.models.weights import build_without_init
from valley3.policy.logprobs import TokenLogProbs, token_logprobs
from valley3.policy.prompts import Prompt, build_processor, prompt_example, with_completion
from valley3.policy.text import GrowingText
from valley3.reasoning.effort import effort_levels


@dataclass
class Completion:
    """One generated answer."""

    token_ids: list[int]  # generated ids, stop-string tokens included, the eos id excluded
    text: str  # their text, cut right after the stop string (kept) when one ended it
    logprobs: list[float]  # log p of each token under softmax(logits / temperature), before top-k/top-p
    finish_reason: str  # "eos" | "stop" | "length"
    stop: str | None = None  # the stop string that ended it ("stop" only)


class Policy:
    """An OmniModel and its processor as post-training uses them: sampled answers with their log-probs, and the
    per-token log-probs of given answers (with gradients, for GRPO).

    Args:
        model: the network (either architecture: composed encoders, or Qwen3-VL with its own vision).
        processor: the processor built for it (`valley3.policy.build_processor(model)`).
    """

    def __init__(self, model: OmniModel, processor: OmniProcessor):
        self.model, self.processor = model, processor
        eos = [processor.eos_id, processor.tokenizer.eos_token_id]
        self.eos_ids = tuple(dict.fromkeys(i for i in eos if i is not None))
        # Never sampled: a placeholder in a completion would claim media the model is then fed with again
        # (log-probs, the next agent turn) and has none of.
        self.banned_ids = tuple(sorted(set(processor.token_ids.values())))

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | Path, device: str | torch.device = "cpu") -> Policy:
        """The model and processor of a Lightning checkpoint of any stage trained by `valley3 fit`, in eval mode."""
        model, processor = load_model_and_processor(ckpt_path)
        return cls(model.to(device).eval(), processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_ids(self, prompt: Prompt, prefix: str | None = None) -> list[int]:
        """The exact ids `generate` feeds for `prompt` (and `prefix`)."""
        return prompt_example(self.processor, prompt, 0, prefix).input_ids.tolist()

    def _decode_text(self, ids: list[int]) -> str:
        return self.processor.tokenizer.decode(ids, skip_special_tokens=False)

    def generate(self, prompts: Sequence[Prompt], *, n: int = 1, max_new_tokens: int = 64, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, stop: Sequence[str] = (), seed: int | None = None,
                 prefix: Sequence[str | None] | None = None, streamer: Callable[[int, str], None] | None = None,
                 min_new_tokens: int = 0, early_banned: Sequence[int] = (),
                 ) -> list[list[Completion]]:
        """`n` answers per prompt: [prompt][sample]. temperature 0 is greedy.

        A prompt is a Sample or a messages record; a trailing assistant turn is dropped. `prefix[i]` is assistant
        text already written for prompt i: generation continues it, and it is not part of the Completion's text.
        The prompts run once, left-padded (positions from the mask, so batching leaves each prompt's result as it is
        alone); with n > 1 a prompt's media are encoded once and its cache rows shared by its n samples. `seed` fixes
        the draws: a row's samples depend on (seed, row) only; None draws the seed from torch's global stream.
        `streamer(row, delta)` gets each row's new text as it comes (row = prompt * n + sample); its deltas add up
        to the Completion's text. Before `min_new_tokens` tokens the eos ids and `early_banned` cannot be drawn
        (budget forcing: the answer after a forced end of thinking starts with text, not a marker or the end).
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if prefix is not None and len(prefix) != len(prompts):
            raise ValueError(f"{len(prefix)} prefixes for {len(prompts)} prompts")
        if not prompts:
            return []
        examples = [prompt_example(self.processor, p, i, prefix[i] if prefix else None) for i, p in enumerate(prompts)]
        batch = move_data_to_device(PadCollator(self.processor.pad_id, "left")(examples), self.device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
        generator = torch.Generator(self.device).manual_seed(seed)
        sampling = Sampling(max_new_tokens, temperature, top_k, top_p, self.eos_ids, min_new_tokens, generator,
                            tuple(early_banned), self.banned_ids)
        texts = [GrowingText(self._decode_text, stop) for _ in range(len(prompts) * n)]
        track = bool(stop) or streamer is not None  # else the text is decoded once at the end

        def on_tokens(rows: list[int], tokens: list[int]) -> list[bool]:
            for row, token in zip(rows, tokens):
                self._emit(streamer, row, texts[row].push(token))
            return [texts[row].stop is not None for row in rows]

        training = self.model.training
        self.model.eval()  # no dropout while sampling
        try:
            rows = decode(self.model, batch.input_ids, batch.attention_mask, batch.media, sampling, n,
                          on_tokens if track else None, batch.sample_ids)
        finally:
            self.model.train(training)
        out = []
        for row, (decoded, text) in enumerate(zip(rows, texts)):
            if not track:
                text.ids = list(decoded.token_ids)
            self._emit(streamer, row, text.finish())
            reason = "stop" if text.stop is not None else decoded.finish_reason
            out.append(Completion(decoded.token_ids, text.text, decoded.logprobs, reason, text.stop))
        return [out[i * n : (i + 1) * n] for i in range(len(prompts))]

    @staticmethod
    def _emit(streamer: Callable[[int, str], None] | None, row: int, delta: str) -> None:
        if streamer is not None and delta:
            streamer(row, delta)

    def completion_batch(self, prompts: Sequence[Prompt], completions: Sequence[Sequence[int]],
                         loss_masks: Sequence[Sequence[int]] | None = None, packed: bool = False, *,
                         prefix: Sequence[str | None] | None = None, padding_side: str = "right",
                         pack_tokens: int | None = None) -> Batch:
        """A batch of prompt ids (+ media) followed by each completion's ids, on the policy's device.

        prompts[i] pairs with completions[i]; labels are the completion ids where `loss_masks[i]` is 1 (tool responses
        0), IGNORE elsewhere. A prompt object given several times (a group of samples) is processed once. Padded
        (`padding_side` "right" or "left"), or `packed`: whole samples in order in rows of at most `pack_tokens`
        (default: one row) with `cu_seqlens`. `prefix[i]`: as in `generate`, unlabelled.
        """
        if len(prompts) != len(completions) or (loss_masks is not None and len(loss_masks) != len(completions)):
            raise ValueError(f"{len(prompts)} prompts, {len(completions)} completions and "
                             f"{'no' if loss_masks is None else len(loss_masks)} loss masks must pair up")
        processed: dict[tuple[int, str | None], Any] = {}
        examples = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            key = (id(prompt), prefix[i] if prefix else None)
            if key not in processed:
                processed[key] = prompt_example(self.processor, prompt, i, key[1])
            mask = None if loss_masks is None else list(loss_masks[i])
            examples.append(with_completion(processed[key], list(completion), mask, i))
        if packed:
            batch = PackingCollator(self.processor.pad_id)(_rows_in_order(examples, pack_tokens))
        else:
            batch = PadCollator(self.processor.pad_id, padding_side)(examples)
        return move_data_to_device(batch, self.device)

    def logprobs(self, batch: Batch, temperature: float = 1.0) -> TokenLogProbs:
        """Per-token log-probs and entropy of the batch's labelled tokens under softmax(logits / temperature), fp32,
        with gradients when grad is enabled (GRPO trains through it). Padded or packed, the values are the same."""
        logits = self.model(**batch.model_inputs())
        return token_logprobs(logits, batch.labels, temperature)


def _rows_in_order(examples: list, pack_tokens: int | None) -> list[list]:
    """Consecutive examples filled into rows of at most `pack_tokens` (all in one row when None), order kept so the
    samples of a packed batch come in the order given."""
    rows: list[list] = []
    used = 0
    for ex in examples:
        if pack_tokens is not None and len(ex) > pack_tokens:
            raise ValueError(f"sample {ex.sample_id} has {len(ex)} tokens, more than pack_tokens={pack_tokens}")
        if not rows or (pack_tokens is not None and used + len(ex) > pack_tokens):
            rows.append([])
            used = 0
        rows[-1].append(ex)
        used += len(ex)
    return rows


def load_model_and_processor(ckpt_path: str | Path) -> tuple[OmniModel, OmniProcessor]:
    """Rebuild the model from the checkpoint's `model` hyperparameter (the class_path/init_args config LightningCLI
    saves), build its processor from the stage's `system_prompt`, `max_tiles`, `video` and `max_len`, and load the
    weights (`weights_only=True`, every tensor must match).

    Reading the config instead of importing the stage class keeps policy/ below stages/; any stage's checkpoint loads.
    """
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams: dict[str, Any] = checkpoint.get("hyper_parameters") or {}
    config = hparams.get("model")
    if not isinstance(config, dict) or "class_path" not in config:
        raise ValueError(
            f"{ckpt_path}: the checkpoint's hyperparameters hold no model config (its stage was built in Python "
            "around a model object); train through `valley3 fit` so the checkpoint can rebuild its model"
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--model", type=OmniModel)
    # Every weight comes from the checkpoint below: no random init first.
    model = build_without_init(lambda: parser.instantiate_classes(parser.parse_object({"model": config})).model)
    processor = build_processor(model, hparams.get("system_prompt", "You are a helpful assistant."),
                                hparams.get("max_tiles", 1), VideoSpec(**(hparams.get("video") or {})))
    processor.max_len = hparams.get("max_len")  # a longer prompt is refused, never truncated
    if "efforts" in hparams:  # a reasoning stage's level set: the effort prompt's bytes as in training
        processor.template.efforts = effort_levels(hparams["efforts"])
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model, processor
