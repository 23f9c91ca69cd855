"""Caption metrics (Valley2 Ecom-Caption): BLEU-n, CIDEr-D, METEOR, ROUGE-L through pycocoevalcap's scorers."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from valley3.eval.metrics.base import EvalMetric, _check_lengths
from valley3.eval.metrics.extract import Extracted, extract_answer_text

CAPTION_METRICS: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "meteor", "rouge_l")
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


def _require_java(what: str) -> None:
    if shutil.which("java") is None:
        raise RuntimeError(
            f"{what} needs a Java runtime (JRE), and `java` is not on PATH. Install one (e.g. "
            "`apt-get install openjdk-17-jre-headless`), or use tokenizer='simple' without 'meteor'."
        )


def simple_tokenize(text: str) -> str:
    """Java-free tokenizer: NFKC, lowercase, punctuation as separators, each CJK character a token."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(_CJK.sub(r" \1 ", text).split())


def caption_text(pred: str | None, field: str = "answer") -> Extracted:
    """The caption of a raw output: after thinking (the JSON ``field`` when the output is JSON), kept as
    written otherwise; COCO's pipeline never strips a leading "The answer is" from a caption."""
    return extract_answer_text(pred, field, strip_prefix=False)


def _tokenize(captions: Mapping[str, list[str]], tokenizer: str) -> dict[str, list[str]]:
    if tokenizer == "simple":
        return {key: [simple_tokenize(c) for c in caps] for key, caps in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({key: [{"caption": c} for c in caps] for key, caps in captions.items()})


def score_captions(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    metrics: Sequence[str] = ("bleu2", "cider", "meteor", "rouge_l"),
    tokenizer: str = "ptb",
) -> dict[str, float]:
    """Corpus scores of ``predictions[id]`` against ``references[id]`` with pycocoevalcap, as the COCO
    caption evaluation does: tokenize, then Bleu(4), Cider (CIDEr-D), Meteor 1.5 and Rouge (ROUGE-L)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = sorted(predictions)
    gts = _tokenize({k: list(references[k]) for k in keys}, tokenizer)
    res = _tokenize({k: [predictions[k]] for k in keys}, tokenizer)
    out: dict[str, float] = {}
    if any(m.startswith("bleu") for m in metrics):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out |= {f"bleu{n}": float(bleu[n - 1]) for n in range(1, 5) if f"bleu{n}" in metrics}
    if "cider" in metrics:
        out["cider"] = float(Cider().compute_score(gts, res)[0])
    if "rouge_l" in metrics:
        out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    if "meteor" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()  # a java subprocess; its __del__ ends it when the name goes
        out["meteor"] = float(meteor.compute_score(gts, res)[0])
        del meteor
    return out


class CaptionMetrics(EvalMetric):
    """Corpus caption metrics over (id, prediction, references) accumulated on every rank.

    Strings cannot be all-reduced, so ``update`` encodes each record as a UTF-8 JSON line in a uint8
    tensor ("cat" state): torchmetrics gathers those byte tensors from all ranks like any other state,
    and ``compute`` decodes them, drops repeated ids (a padding sampler; the first record wins) and
    scores the whole corpus at once, which CIDEr's document frequencies need. The thinking block (and a
    JSON ``answer`` wrapper) is stripped from predictions, nothing else; a malformed one scores as an empty caption.

    Args:
        metrics: any of ``bleu1..bleu4``, ``cider`` (CIDEr-D), ``meteor``, ``rouge_l``.
        tokenizer: ``"ptb"`` (Stanford PTBTokenizer, as COCO; needs java) or ``"simple"`` (Python,
            splits CJK characters; for Chinese captions or machines without java).
        field: JSON field holding the caption when the model answers in JSON.
    """

    _cat_dtype = torch.uint8

    def __init__(
        self,
        metrics: Sequence[str] = ("bleu2", "cider", "meteor", "rouge_l"),
        tokenizer: str = "ptb",
        field: str = "answer",
        **kwargs: Any,
    ) -> None:
        super().__init__(None, **kwargs)
        unknown = set(metrics) - set(CAPTION_METRICS)
        if unknown or not metrics or tokenizer not in ("ptb", "simple"):
            raise ValueError(f"metrics must be among {CAPTION_METRICS} and tokenizer 'ptb' or 'simple'")
        if tokenizer == "ptb":
            _require_java("The PTB tokenizer of pycocoevalcap")
        if "meteor" in metrics:
            _require_java("METEOR (pycocoevalcap's meteor-1.5.jar)")
        self.metrics, self.tokenizer, self.field = list(metrics), tokenizer, field
        self.add_state("records", [], dist_reduce_fx="cat")

    def update(
        self,
        ids: Sequence[Any],
        preds: Sequence[str | None] = (),
        references: Sequence[Sequence[str]] = (),
        *,
        captions: Sequence[str] | None = None,
        reasons: Sequence[str | None] = (),
    ) -> None:
        """Args: sample ids, raw outputs, the reference captions of each sample (one or more); or instead of
        the outputs, ``captions`` already extracted (:func:`caption_text`, "" when malformed) and ``reasons``."""
        if captions is None:
            _check_lengths(ids=ids, preds=preds)
            got = [caption_text(pred, self.field) for pred in preds]
            captions, reasons = [g.value if g.ok else "" for g in got], [g.reason for g in got]
        _check_lengths(ids=ids, captions=captions, references=references)
        lines = []
        for sample_id, caption, refs in zip(ids, captions, references):
            refs = [refs] if isinstance(refs, str) else [str(r) for r in refs]
            if not refs:
                raise ValueError(f"sample {sample_id!r} has no reference caption")
            lines.append(json.dumps([str(sample_id), caption, refs], ensure_ascii=False) + "\n")
        self._count_failures(reasons)
        if lines:
            data = torch.frombuffer(bytearray("".join(lines).encode()), dtype=torch.uint8)
            self.records.append(data.to(self.device))

    def _decode(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        data = dim_zero_cat(self.records) if len(self.records) else torch.zeros(0, dtype=torch.uint8)
        references: dict[str, list[str]] = {}
        predictions: dict[str, str] = {}
        for line in bytes(data.cpu().numpy()).decode().split("\n")[:-1]:  # not splitlines: JSON keeps U+2028
            sample_id, pred, refs = json.loads(line)
            if sample_id not in predictions:
                predictions[sample_id], references[sample_id] = pred, refs
        return references, predictions

    def compute(self) -> dict[str, Tensor]:
        """One float64 scalar per requested metric (NaN before any sample), ``count``, ``malformed[/<reason>]``."""
        references, predictions = self._decode()
        if predictions:
            scores = score_captions(references, predictions, self.metrics, self.tokenizer)
        else:
            scores = {m: float("nan") for m in self.metrics}
        out = {m: torch.tensor(scores[m], dtype=torch.float64) for m in self.metrics}
        return out | {"count": torch.tensor(len(predictions))} | self._malformed_dict()
