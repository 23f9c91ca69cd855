"""Rejection-sampling filter (S3, and GRPO's pass-rate band): pass counts over k tries -> kept samples, stats, JSONL."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from valley3.data.schema import SchemaError

# Why a scored sample is dropped; a kept sample has no reason.
DROP_REASONS = ("never_passed", "always_passed", "below_band", "above_band")


@dataclass(frozen=True)
class Band:
    """The pass rates a sample may have to be kept: ``low <= rate <= high``, except that an end at 0 or 1 is open.

    So the default ``Band(0, 1)`` keeps ``0 < rate < 1`` (drops exactly 0/k and k/k: S3), and
    ``Band(0.25, 0.75)`` keeps ``0.25 <= rate <= 0.75`` (GRPO's zone of proximal development). A sample the
    model never or always answers right is never kept: it teaches nothing and, in GRPO, has zero advantage.

    Args:
        low: lowest pass rate kept, in [0, 1] (0 = anything above never-right).
        high: highest pass rate kept, in [0, 1] (1 = anything below always-right).
    """

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got [{self.low}, {self.high}]")

    def verdict(self, passes: int, k: int) -> str | None:
        """None to keep a sample right in `passes` of `k` tries, else its reason from DROP_REASONS."""
        if k < 1 or not 0 <= passes <= k:
            raise ValueError(f"pass count {passes} of {k} tries is impossible")
        if passes == 0:
            return "never_passed"
        if passes == k:
            return "always_passed"
        # Compared in counts, with slack, so 0.75 with k=4 keeps 3/4 despite float rounding.
        if passes < self.low * k - 1e-9:
            return "below_band"
        if passes > self.high * k + 1e-9:
            return "above_band"
        return None

    def keeps(self, passes: int, k: int) -> bool:
        return self.verdict(passes, k) is None


def rejection_stats(
    passes: Sequence[int], k: int, band: Band, skipped: Mapping[str, int] | None = None
) -> dict[str, object]:
    """Counts of a filtering run: samples, kept, dropped per reason, skipped per reason, pass-count histogram.

    Args:
        passes: right answers of each scored sample, out of `k`.
        k: tries per sample.
        band: the band applied.
        skipped: samples not scored (unreadable media, no reference ...), by reason.
    """
    verdicts = Counter(band.verdict(p, k) for p in passes)
    skipped = dict(skipped or {})
    histogram = Counter(passes)
    return {
        "samples": len(passes) + sum(skipped.values()),
        "scored": len(passes),
        "kept": verdicts[None],
        "dropped": {reason: verdicts[reason] for reason in DROP_REASONS},
        "skipped": skipped,
        "k": k,
        "band": [band.low, band.high],
        "pass_histogram": {f"{i}/{k}": histogram[i] for i in range(k + 1)},
        "mean_pass_rate": round(sum(passes) / (k * len(passes)), 6) if passes else None,
    }


def raw_records(path: str | os.PathLike) -> list[str]:
    """Each record of a data file as one JSONL line, in the order `formats.read_samples` reads them.

    A JSONL file gives its non-blank lines unchanged (without the newline); a JSON-list file gives each
    entry dumped on one line.
    """
    path = Path(path)
    text = path.read_bytes().decode("utf-8-sig")
    if text.lstrip().startswith("["):
        return [json.dumps(entry, ensure_ascii=False) for entry in json.loads(text)]
    # "\n" only, as the reader iterates the file: splitlines() would also cut at U+2028 inside a string.
    return [line.strip() for line in text.split("\n") if line.strip()]


def with_meta(line: str, meta: Mapping[str, object], where: str = "<line>") -> str:
    """The record `line` with `meta` merged into its ``meta`` object.

    A record without a ``meta`` key keeps every byte of its line: the object is appended before the closing
    brace. One with ``meta`` is decoded, merged and dumped again.
    """
    record = json.loads(line)
    if not isinstance(record, dict):
        raise SchemaError(f"{where}: expected a JSON object")
    if "meta" not in record:
        body = line.rstrip()  # a JSON object, so it ends with "}"
        sep = ", " if record else ""
        return f"{body[:-1]}{sep}\"meta\": {json.dumps(dict(meta), ensure_ascii=False)}}}"
    if not isinstance(record["meta"], dict):
        raise SchemaError(f"{where}: 'meta' must be an object to add {sorted(meta)} to it")
    record["meta"] = {**record["meta"], **meta}
    return json.dumps(record, ensure_ascii=False)


def write_kept(
    lines: Sequence[str], kept: Iterable[tuple[int, float]], out: str | os.PathLike, add_meta: bool = True
) -> int:
    """Write the kept records as JSONL, in input order; returns how many.

    Args:
        lines: every input record as a JSONL line (see `raw_records`).
        kept: (index into `lines`, pass rate) of each kept record.
        out: the JSONL file to write.
        add_meta: add ``meta.pass_rate`` to each record; False copies the lines byte for byte.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(kept)
    with out.open("w", encoding="utf-8") as f:
        for index, rate in rows:
            line = with_meta(lines[index], {"pass_rate": rate}, f"record {index}") if add_meta else lines[index]
            f.write(line + "\n")
    return len(rows)
