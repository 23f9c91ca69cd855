"""Ecom-Caption (Valley2): product captions scored with BLEU-2, CIDEr, METEOR and ROUGE-L (pycocoevalcap).

JSONL, one item per line::

    {"id": "c1", "images": ["img/c1.png"], "prompt": "Describe this product.",
     "captions": ["A red leather shoe with white laces.", "Red shoe with white laces."]}

- ``captions``: one or more reference captions (``caption``: a single one);
- ``prompt``: optional, the benchmark's ``prompt`` by default; media as in every suite (paths relative to
  the JSONL file, tags placed in the prompt or put in front).

The metrics are corpus-level (CIDEr's document frequencies come from the whole reference set), so the
per-sample ``score`` in predictions.jsonl is empty and its ``extracted`` field is the caption the metrics
scored: pycocoevalcap over those and the references reproduces the table. A caption is scored as written
(after any thinking block or JSON ``answer`` wrapper; no "The answer is" stripping, as COCO); malformed
outputs (empty, unclosed thinking, broken JSON) are scored as empty captions and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torchmetrics import Metric

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.eval.benchmarks.scored import Scored
from valley3.eval.metrics import CaptionMetrics, caption_text
from valley3.eval.report import OVERALL, ResultRow


class EcomCaption(Benchmark):
    """Valley2 Ecom-Caption: BLEU-2, CIDEr, METEOR, ROUGE-L over the whole caption set.

    Args:
        path: the JSONL file (format in the module docstring).
        prompt: the request of records without their own ``prompt``.
        metrics: any of bleu1..bleu4, cider, meteor, rouge_l; the first is the table's headline.
        tokenizer: "ptb" (Stanford PTB tokenizer, as COCO; needs java) or "simple" (Python; CJK per character).
        **kwargs: the common benchmark arguments (name, limit, max_new_tokens, system_prompt, media_root,
            max_images).
    """

    suite = "ecom_caption"
    default_subtasks = (OVERALL,)

    def __init__(
        self,
        path: str,
        prompt: str = "Describe this product in one sentence.",
        metrics: list[str] | None = None,
        tokenizer: str = "ptb",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_new_tokens", 48)
        super().__init__(path, **kwargs)
        self.prompt, self.tokenizer = prompt, tokenizer
        self.caption_metrics = list(metrics or ("bleu2", "cider", "meteor", "rouge_l"))

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        captions = record.get("captions", record.get("caption"))
        captions = [captions] if isinstance(captions, str) else captions
        if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
            raise SchemaError(f"{source}: 'captions' must be a non-empty list of strings (or 'caption' a string)")
        prompt = record.get("prompt") or self.prompt
        sample = self.make_sample(uid, record, source, prompt, captions[0])
        return [EvalItem(uid, OVERALL, sample, captions)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        got = caption_text(prediction)
        return Scored(None, got.reason, got.value if got.ok else "")

    def metrics(self) -> dict[str, Metric]:
        return {"caption": CaptionMetrics(self.caption_metrics, tokenizer=self.tokenizer)}

    def update(self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], scored: Sequence[Scored]) -> None:
        metrics["caption"].update(
            [i.uid for i in items],
            references=[i.target for i in items],
            captions=[s.extracted for s in scored],
            reasons=[s.malformed for s in scored],
        )

    def rows(self, results: Mapping[str, Mapping[str, Tensor]]) -> list[ResultRow]:
        out = results["caption"]
        head, *rest = self.caption_metrics
        return [self.row(OVERALL, head, out[head], out["count"], {m: out[m] for m in rest})]
