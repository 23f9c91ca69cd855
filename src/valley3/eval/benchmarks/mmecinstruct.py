"""MMECInstruct (CASLIE): ECInstruct's instruction format with product images, scored by ECInstruct's scorers.

JSONL, one instance per line, as MMECInstruct ships them (``id`` added, image paths made local)::

    {"id": "mm1", "task": "Product_Substitute_Identification",
     "instruction": "Can the second product substitute for the first? Answer yes or no.",
     "input": "Product 1: Acme red canvas shoe. Product 2: Lumo red canvas shoe.",
     "images": ["img/p1.png", "img/p2.png"], "caption_info": ["A red canvas shoe.", "A red sneaker."],
     "output": "yes"}
    {"id": "mm2", "task": "Sentiment_Analysis", "instruction": "What is the sentiment of the review?",
     "input": "Love it!", "images": ["img/p3.png"], "options": ["A: positive", "B: negative"], "output": "A"}

- every field of :mod:`~valley3.eval.benchmarks.ecinstruct` (``instruction``, ``input``, ``options``,
  ``output``, ``task``), plus ``images``: at least one image, one per product of ``input`` in order (paths
  relative to the JSONL file; ``<image>`` tags in ``instruction``/``input`` place them, else they go first).
- ``caption_info`` (optional): the release's generated caption of each image; with ``captions: true`` they
  are added to the prompt after the input (CASLIE's caption-as-context setting).
- tasks: the release's seven (answerability prediction, category classification, product relation
  prediction, product substitute identification, multiclass product classification, sentiment analysis,
  sequential recommendation) or any ECInstruct task; scorers as ECInstruct (``accuracy`` unless
  ``scoring`` says otherwise; ``Sequential_Recommendation`` is Recall@1 of the ranked ids or letters).
"""

from __future__ import annotations

from typing import Any

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import EvalItem
from valley3.eval.benchmarks.ecinstruct import ECInstruct

MMECINSTRUCT_TASKS = (
    "Answerability_Prediction",
    "Category_Classification",
    "Product_Relation_Prediction",
    "Product_Substitute_Identification",
    "Multiclass_Product_Classification",
    "Sentiment_Analysis",
    "Sequential_Recommendation",
)


class MMECInstruct(ECInstruct):
    """MMECInstruct: ECInstruct with product images (and optionally their captions), same per-task scorers.

    Args:
        path: the JSONL file (format in the module docstring).
        scoring: task -> scorer (accuracy, attribute_f1, recall@1, rouge_l), over ECInstruct's defaults.
        captions: add each image's ``caption_info`` caption to the prompt.
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "mmecinstruct"

    def __init__(self, path: str, scoring: dict[str, str] | None = None, captions: bool = False, **kwargs: Any) -> None:
        super().__init__(path, scoring=scoring, **kwargs)
        self.captions = captions

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        images = self.require(record, "images", source, list)
        if not images or not all(isinstance(i, str) and i for i in images):
            raise SchemaError(f"{source}: 'images' must be a non-empty list of image paths")
        if self.captions:
            captions = self.require(record, "caption_info", source, list)
            if len(captions) != len(images):
                raise SchemaError(f"{source}: {len(captions)} 'caption_info' entries for {len(images)} images")
            lines = [f"Image {k} caption: {c}" for k, c in enumerate(captions, start=1)]
            record = {**record, "input": "\n".join([str(record.get("input") or ""), *lines]).strip()}
        return super().build(record, source)
