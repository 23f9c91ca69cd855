"""The benchmark contract: a suite reads its JSONL into prompt samples and scores generations with torchmetrics."""

from __future__ import annotations

import itertools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor
from torchmetrics import Metric

from valley3.data.formats import parse_record
from valley3.data.schema import MEDIA_TAGS, Sample, SchemaError, read_records
from valley3.eval.benchmarks.scored import SampleScore, Scored
from valley3.eval.report import OVERALL, SKIPPED, ResultRow

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VISUAL_TAG = re.compile(r"<image>|<video>")


@dataclass
class EvalItem:
    """One prompt to answer; ``sample`` ends with the reference answer, which generation holds out.

    ``target`` is what the suite's scorer compares with (a letter, accepted strings, a JSON object, ids);
    ``meta`` carries grouping keys (question id and rotation, task, attribute).
    """

    uid: str
    subtask: str
    sample: Sample
    target: Any
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return "\n".join(t.content for t in self.sample.turns[:-1] if t.role == "user")

    @property
    def reference(self) -> str:
        return self.sample.turns[-1].content


def options_block(options: Sequence[str]) -> str:
    """``A. first\\nB. second ...``."""
    return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))


def answer_letter(answer: Any, options: Sequence[str], source: str) -> str:
    """The correct option's letter from a letter, a 0-based index or the option's own text."""
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(options):
        return LETTERS[answer]
    if isinstance(answer, str):
        if answer in options:
            return LETTERS[list(options).index(answer)]
        letter = answer.strip().strip(".()").upper()
        if len(letter) == 1 and letter in LETTERS[: len(options)]:
            return letter
    raise SchemaError(f"{source}: answer {answer!r} is not a letter, index or text of the {len(options)} options")


class Benchmark(ABC):
    """A suite: reads its JSONL into :class:`EvalItem` prompts and scores the generated answers.

    ``score(item, prediction)`` reads each output once into a :class:`Scored` (value in [0, 1], malformed
    reason, extracted answer); ``evaluate`` feeds those to the metrics and writes them to the per-sample
    file, so the table is an aggregate of the file's numbers. By default values are averaged per sub-task
    and, weighted by samples, overall. A suite with corpus or grouped metrics (circular MCQ, captions, JSON
    F1) overrides ``metrics``, ``update`` and ``rows``. A new suite is ``build`` (one record -> items) and
    ``score``.

    Args:
        path: the suite's JSONL file (read when the run starts, not when the config is parsed).
        name: its name in the results table (default: the suite's).
        subtasks: the sub-tasks, in report order (default: the suite's list, or those of the data in order of
            first appearance when the suite has none); a record of another sub-task is an error.
        limit: read only the first ``limit`` records (quick runs).
        max_new_tokens: generation budget of this suite's answers (default: the stage's).
        system_prompt: system turn of every prompt (default: the stage's).
        media_root: folder relative media paths resolve against (default: the JSONL file's folder).
        max_images: keep at most this many images per sample; extra ``<image>`` tags are dropped.
    """

    suite: str = ""
    default_subtasks: tuple[str, ...] = ()

    def __init__(
        self,
        path: str,
        name: str | None = None,
        subtasks: list[str] | None = None,
        limit: int | None = None,
        max_new_tokens: int | None = None,
        system_prompt: str | None = None,
        media_root: str | None = None,
        max_images: int | None = None,
    ) -> None:
        self.path, self.name = path, name or self.suite
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise ValueError(f"benchmark name {self.name!r} must be letters, digits, '_' or '-'")
        self.subtasks = list(subtasks) if subtasks is not None else list(self.default_subtasks)
        self.limit, self.max_new_tokens, self.system_prompt = limit, max_new_tokens, system_prompt
        self.media_root, self.max_images = media_root, max_images
        self._items: list[EvalItem] | None = None
        self._base_dir = Path(media_root or ".")

    # -- reading ---------------------------------------------------------------------------------
    @property
    def items(self) -> list[EvalItem]:
        """Every prompt of the suite (read on first access)."""
        if self._items is None:
            self._items = self.load()
        return self._items

    def load(self) -> list[EvalItem]:
        """Read the JSONL file into items; a bad record raises a SchemaError naming its ``file:line``."""
        path, items = Path(self.path), []
        self._base_dir = Path(self.media_root) if self.media_root else path.absolute().parent
        for source, record in itertools.islice(read_records(path), self.limit):
            items += self.build(record, source)
        if not items:
            raise SchemaError(f"{path}: no records")
        uids = [i.uid for i in items]
        if len(set(uids)) != len(uids):
            raise SchemaError(f"{path}: repeated ids {sorted({u for u in uids if uids.count(u) > 1})[:5]}")
        if not self.subtasks:
            self.subtasks = list(dict.fromkeys(i.subtask for i in items))
        return items

    @property
    def present_subtasks(self) -> list[str]:
        """The sub-tasks that have items, in report order."""
        seen = {i.subtask for i in self.items}
        return [s for s in self.subtasks if s in seen]

    def check_subtask(self, subtask: Any, source: str) -> str:
        """``subtask`` if it is one of the benchmark's (any string when they come from the data)."""
        if not isinstance(subtask, str) or (self.subtasks and subtask not in self.subtasks):
            raise SchemaError(f"{source}: sub-task {subtask!r}; expected one of {self.subtasks}")
        return subtask

    @staticmethod
    def require(record: Mapping[str, Any], key: str, source: str, kind: type | tuple[type, ...] = str) -> Any:
        """``record[key]``, which must exist and be of ``kind``."""
        if key not in record:
            raise SchemaError(f"{source}: missing {key!r}; keys are {sorted(record)}")
        if not isinstance(record[key], kind):
            wanted = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise SchemaError(f"{source}: {key!r} must be {wanted}, got {type(record[key]).__name__}")
        return record[key]

    def make_sample(self, uid: str, record: Mapping[str, Any], source: str, prompt: str, reference: Any) -> Sample:
        """A validated Sample: [system,] user ``prompt`` with the record's media, assistant ``reference``.

        Media tags missing from ``prompt`` are put in front of it. A video given as ``video_frames`` (a list
        of frame images per video) takes the place of its ``<video>`` tag as one ``<image>`` per frame.
        """
        images, audios = list(record.get("images") or []), list(record.get("audios") or [])
        videos, frames = list(record.get("videos") or []), list(record.get("video_frames") or [])
        if videos and frames:
            raise SchemaError(f"{source}: give a video as 'videos' or as 'video_frames', not both")
        n_videos = len(videos) + len(frames)
        for tag, n in (("<audio>", len(audios)), ("<video>", n_videos), ("<image>", len(images))):
            if n and tag not in prompt:
                prompt = tag * n + prompt
        if frames:
            prompt, images = _expand_frames(prompt, images, frames, source)
        if self.max_images is not None and len(images) > self.max_images:
            prompt, images = _drop_images(prompt, self.max_images), images[: self.max_images]
        if not isinstance(reference, str):
            reference = json.dumps(reference, ensure_ascii=False)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": reference}]
        message = {"id": uid, "messages": messages, "images": images, "audios": audios, "videos": videos}
        return parse_record(message, source, self._base_dir, "messages")

    @abstractmethod
    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        """The prompt(s) of one JSONL record (a circular MCQ question gives one per rotation)."""

    # -- scoring ---------------------------------------------------------------------------------
    @abstractmethod
    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        """One output's :class:`Scored`: the single place a prediction is read, for the table and the file."""

    def metrics(self) -> dict[str, Metric]:
        """Fresh torchmetrics for one run; called after ``items`` is read, the same on every rank."""
        return {"score": SampleScore(self.subtasks)}

    def update(self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], scored: Sequence[Scored]) -> None:
        """Feed one batch of scored outputs to the metrics (never the raw outputs: the table sums the file)."""
        metrics["score"].update(
            [s.score or 0.0 for s in scored],
            [i.subtask for i in items],
            [s.malformed for s in scored],
            [s.extra.get("counts") for s in scored],
        )

    def evaluate(
        self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], preds: Sequence[str | None]
    ) -> list[dict[str, Any]]:
        """Score a batch once, feed the metrics and return its ``predictions.jsonl`` lines."""
        scored = [self.score(item, pred) for item, pred in zip(items, preds)]
        self.update(metrics, items, scored)
        return [self.record(item, pred, scored=s) for item, pred, s in zip(items, preds, scored)]

    def rows(self, results: Mapping[str, Mapping[str, Tensor]]) -> list[ResultRow]:
        """Table rows from the computed metrics: one per sub-task with items, then ``overall``."""
        out = results["score"]
        rows = [self.row(s, self.metric_name(s), out[f"score/{s}"], out[f"count/{s}"]) for s in self.present_subtasks]
        if len(self.subtasks) == 1:
            rows = []  # a single sub-task is the overall row
        return rows + [self.row(OVERALL, "score", out["score"], out["count"], {"macro": out["macro"]})]

    def metric_name(self, subtask: str) -> str:
        """What a sub-task's per-sample score is, for the table (``acc`` unless the suite says otherwise)."""
        return "acc"

    def row(
        self, subtask: str, metric: str, score: Any, count: Any, details: Mapping[str, Any] | None = None
    ) -> ResultRow:
        """A :class:`ResultRow` of this benchmark from tensors or numbers."""
        return ResultRow(
            self.name, subtask, metric, float(score), int(count), {k: _num(v) for k, v in (details or {}).items()}
        )

    def record(
        self, item: EvalItem, prediction: str | None, skipped: str | None = None, scored: Scored | None = None
    ) -> dict[str, Any]:
        """The per-sample line of ``predictions.jsonl`` (``scored`` when the batch was already scored)."""
        if scored is None:
            scored = Scored(None, SKIPPED) if skipped is not None else self.score(item, prediction)
        out = {"id": item.uid, "benchmark": self.name, "subtask": item.subtask, "prompt": item.prompt}
        out |= {"prediction": prediction, "reference": item.reference, "extracted": scored.extracted}
        out |= {"score": scored.score, "malformed": scored.malformed, **scored.extra}
        return out | ({"skip_reason": skipped} if skipped is not None else {})


def _num(value: Any) -> float | int:
    if isinstance(value, Tensor):
        return value.item() if value.is_floating_point() else int(value)
    return value


def _expand_frames(prompt: str, images: list[str], frames: list[Any], source: str) -> tuple[str, list[str]]:
    """Replace the k-th ``<video>`` tag by one ``<image>`` per frame of ``frames[k]``, images kept in tag order."""
    if prompt.count("<video>") != len(frames):
        raise SchemaError(
            f"{source}: {prompt.count('<video>')} <video> tag(s) but {len(frames)} 'video_frames' entries"
        )
    queue_images, queue_frames, out_images = list(images), list(frames), []

    def swap(match: re.Match) -> str:
        if match.group() == "<image>":
            out_images.append(queue_images.pop(0) if queue_images else "")
            return "<image>"
        clip = queue_frames.pop(0)
        if not isinstance(clip, list) or not clip:
            raise SchemaError(f"{source}: each 'video_frames' entry must be a non-empty list of frame paths")
        out_images.extend(clip)
        return "<image>" * len(clip)

    prompt = _VISUAL_TAG.sub(swap, prompt)
    return prompt, out_images + queue_images


def _drop_images(prompt: str, keep: int) -> str:
    """The prompt without its ``<image>`` tags after the first ``keep``."""
    count = 0

    def drop(match: re.Match) -> str:
        nonlocal count
        count += 1
        return match.group() if count <= keep else ""

    return re.sub(MEDIA_TAGS["image"], drop, prompt)
