"""`valley3 data crops` and `valley3 data dedup`: JSONL of images in, cropped or deduplicated JSONL + summary out."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from valley3.data.curation.crops import CropError, enclosing_square
from valley3.data.curation.dedup import dedup_hashes, phash
from valley3.data.media import MediaError
from valley3.data.media.image import load_image
from valley3.data.schema import SchemaError, read_records
from valley3.data.summary import write_summary

# (RGB PIL image) -> regions of interest as (x0, y0, x1, y1); see `detector.load_detector`.
Detector = Callable[[Any], list[list[float]]]


def _image_path(record: dict[str, Any], where: str, root: Path) -> Path:
    image = record.get("image")
    if not isinstance(image, str) or not image:
        raise SchemaError(f"{where}: needs an 'image' path")
    return root / image


def crops(data: str, out: str, detector: Detector | None = None, quality: int = 95) -> dict[str, Any]:
    """Crop each record's image to the smallest square around its regions of interest.

    A record is `{"id", "image", "boxes": [[x0, y0, x1, y1], ...]}` (ids and extra keys are kept); without
    "boxes", `detector` finds them. Writes `<out>/crops/<n>.jpg`, `<out>/crops.jsonl` (each record with
    "image" pointing at its crop and "crop" the square in source pixels) and `<out>/summary.json`. Unreadable
    images, bad boxes and images where no region was found are skipped and counted by reason.
    """
    out_dir, root = Path(out), Path(data).parent
    (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    skipped: dict[str, int] = defaultdict(int)
    start, written = time.perf_counter(), 0
    records = list(read_records(data))
    with open(out_dir / "crops.jsonl", "w", encoding="utf-8") as sink:
        for where, record in tqdm(records, desc="crops", unit="image"):
            try:
                image = load_image(_image_path(record, where, root))
                boxes = record.get("boxes")
                if boxes is None:
                    if detector is None:
                        raise SchemaError(f"{where}: no 'boxes' and no --detector")
                    boxes = detector(image)
                square = enclosing_square(boxes, *image.size)
            except MediaError:
                skipped["unreadable_image"] += 1
                continue
            except CropError as exc:
                skipped["no_regions" if "no regions" in str(exc) else "bad_boxes"] += 1
                continue
            path = out_dir / "crops" / f"{written}.jpg"
            image.crop(tuple(square)).save(path, quality=quality)
            sink.write(json.dumps({**record, "image": str(path.resolve()), "source_image": record["image"],
                                   "crop": list(square)}, ensure_ascii=False) + "\n")
            written += 1
    return write_summary(out_dir, {"tool": "crops", "before": len(records), "after": written,
                                   "skipped": dict(skipped)}, start)


def dedup(data: str, out: str, threshold: int = 4, scope: str = "item", max_per_item: int | None = None) -> dict:
    """Drop images that are perceptual duplicates (pHash within `threshold` bits) of an earlier kept one.

    Args:
        data: JSONL of `{"image", "item"?: ...}` records (e.g. `crops.jsonl`); earlier records win.
        out: folder for `kept.jsonl`, `dropped.jsonl` (with the id of the kept twin) and `summary.json`.
        threshold: the largest Hamming distance that still counts as the same picture.
        scope: "item" compares images of the same item only (and applies `max_per_item`); "dataset" all.
        max_per_item: at most this many distinct images per item (the eBay study keeps at most 9).
    """
    if scope not in ("item", "dataset"):
        raise ValueError(f"scope must be 'item' or 'dataset', got {scope!r}")
    out_dir, root, start = Path(out), Path(data).parent, time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    records, hashes, skipped = [], [], defaultdict(int)
    for where, record in tqdm(list(read_records(data)), desc="hash", unit="image"):
        try:
            hashes.append(phash(_image_path(record, where, root)))
            records.append((where, record))
        except MediaError:
            skipped["unreadable_image"] += 1
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, (where, record) in enumerate(records):
        groups[record.get("item") if scope == "item" else None].append(i)
    dropped: dict[int, int] = {}
    for members in groups.values():
        cap = max_per_item if scope == "item" else None
        result = dedup_hashes([hashes[i] for i in members], threshold, cap)
        dropped |= {members[i]: (members[j] if j >= 0 else -1) for i, j in result.duplicate_of.items()}
    with open(out_dir / "kept.jsonl", "w", encoding="utf-8") as kept, \
            open(out_dir / "dropped.jsonl", "w", encoding="utf-8") as gone:
        for i, (where, record) in enumerate(records):
            if i not in dropped:
                kept.write(json.dumps(record, ensure_ascii=False) + "\n")
                continue
            twin = dropped[i]
            reason = {"reason": "over_cap"} if twin < 0 else {"reason": "duplicate", "duplicate_of": records[twin][0]}
            gone.write(json.dumps({"source": where, **reason, "record": record}, ensure_ascii=False) + "\n")
    removed = {"duplicate": sum(j >= 0 for j in dropped.values()), "over_cap": sum(j < 0 for j in dropped.values())}
    extra = {"scope": scope, "threshold": threshold, "removed": removed, "groups": len(groups)}
    return write_summary(out_dir, {"tool": "dedup", "before": len(records) + sum(skipped.values()),
                                   "after": len(records) - len(dropped), "skipped": dict(skipped), **extra}, start)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    crop = commands.add_parser("crops", help="crop images to the smallest square around their regions of interest")
    crop.add_argument("--data", required=True, help="JSONL of {image, boxes?} records")
    crop.add_argument("--out", required=True)
    crop.add_argument("--detector", help="torchvision detection model name, used where a record has no boxes")
    crop.add_argument("--detector-weights", help="local weights file for --detector (safetensors or .pt)")
    crop.add_argument("--min-score", type=float, default=0.5, help="detections below this score are ignored")
    dup = commands.add_parser("dedup", help="drop perceptual-hash duplicates within items or across the dataset")
    dup.add_argument("--data", required=True, help="JSONL of {image, item?} records")
    dup.add_argument("--out", required=True)
    dup.add_argument("--threshold", type=int, default=4, help="max Hamming distance (of 64 bits) for a duplicate")
    dup.add_argument("--scope", choices=["item", "dataset"], default="item")
    dup.add_argument("--max-per-item", type=int, default=None)


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "crops":
        detector = None
        if args.detector:
            from valley3.data.curation.detector import load_detector

            detector = load_detector(args.detector, args.detector_weights, args.min_score)
        summary = crops(args.data, args.out, detector)
    else:
        summary = dedup(args.data, args.out, args.threshold, args.scope, args.max_per_item)
    print(json.dumps(summary, indent=2))
    return summary
