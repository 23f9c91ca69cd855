"""`valley3 data verify`: the eBay study's visual verification pipeline — keep the listing aspects a caption supports.

Each listing image is captioned by a captioner model; a verifier model then reads the caption and the listing's
raw aspects and says which aspects the caption supports. Supported aspects become an instruction sample (the
image, a question, the aspects as JSON); the rest are dropped with a reason. Both models are `JudgeBackend`s: a
valley3 checkpoint, a local Hugging Face causal LM (verifier only: it sees no image) or an OpenAI-compatible
endpoint. Progress is appended per batch to `report.jsonl`, so a re-run (after a crash or kill -9) continues
with the listings not yet reported.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from valley3.data.schema import read_records
from valley3.rewards.judge import JudgeBackend

CAPTION_PROMPT = ("Describe the product in this photo for a shopping catalog: what it is, its brand and text you "
                  "can read, colours, materials, pattern, shape and condition. Mention only what is visible.")
VERIFY_PROMPT = (
    "A product photo was described as follows.\nDescription: {caption}\n\n"
    "The seller listed these attributes:\n{aspects}\n\n"
    "Which attributes does the description support? Reply with a JSON list of the supported attribute names "
    "only, e.g. [\"Brand\", \"Color\"]; reply [] if none."
)
QUESTION = "<image>What are the attributes of this product? Answer in JSON."


def _listing(record: dict[str, Any], where: str, root: Path) -> tuple[str, Path, dict[str, str]]:
    if not isinstance(record.get("image"), str) or not isinstance(record.get("aspects"), dict):
        raise ValueError(f"{where}: a listing needs 'image' (a path) and 'aspects' (an object)")
    listing_id = str(record.get("id", where))
    aspects = {str(k): str(v) for k, v in record["aspects"].items()}
    return listing_id, root / record["image"], aspects


def parse_supported(reply: str | None, names: list[str]) -> list[str] | None:
    """The aspect names a verifier reply lists (a JSON list, possibly inside other text); None if unreadable.
    Names are matched case-insensitively to the listing's; unknown names are ignored."""
    if reply is None:
        return None
    match = re.search(r"\[[^\[\]]*\]", reply)
    if match is None:
        return None
    try:
        listed = json.loads(match.group())
    except json.JSONDecodeError:
        return None
    if not isinstance(listed, list):
        return None
    by_lower = {name.lower(): name for name in names}
    return [by_lower[str(x).strip().lower()] for x in listed if str(x).strip().lower() in by_lower]


def _done(report: Path, samples: Path) -> set[str]:
    """Listing ids already reported. A torn last line (a kill mid-write) is cut off so the report stays JSONL, and
    samples of listings the report does not hold (a kill between the two writes) are removed: they come again."""
    if not report.is_file():
        samples.unlink(missing_ok=True)
        return set()
    text = report.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        report.write_text(text, encoding="utf-8")
    # Lines end at "\n" only: splitlines() would also cut at U+2028/U+2029, which JSON strings hold raw.
    done = {json.loads(line)["id"] for line in text.split("\n") if line.strip()}
    if samples.is_file():
        whole = samples.read_text(encoding="utf-8").split("\n")[:-1]  # the last part has no "\n": torn or empty
        kept = [line + "\n" for line in whole if line.strip() and json.loads(line)["id"] in done]
        samples.write_text("".join(kept), encoding="utf-8")
    return done


def _image_message(path: Path, prompt: str) -> list[dict[str, Any]]:
    parts = [{"type": "image_url", "image_url": {"url": str(path.resolve())}}, {"type": "text", "text": prompt}]
    return [{"role": "user", "content": parts}]


def verify(data: str, out: str, captioner: JudgeBackend, verifier: JudgeBackend, batch_size: int = 8,
           max_tokens: int = 128) -> dict[str, Any]:
    """Run the pipeline over a listings JSONL (`{"id", "image", "aspects": {name: value}}`) into `out`:
    `verified.jsonl` (instruction samples), `report.jsonl` (per listing: caption, kept, dropped with reasons)
    and `summary.json`. Listings already in `report.jsonl` are skipped (resume)."""
    start, out_dir, root = time.perf_counter(), Path(out), Path(data).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path, samples_path = out_dir / "report.jsonl", out_dir / "verified.jsonl"
    done = _done(report_path, samples_path)
    listings = []
    for where, record in read_records(data):
        listing = _listing(record, where, root)
        if listing[0] not in done:
            listings.append(listing)
    for i in tqdm(range(0, len(listings), batch_size), desc="verify", unit="batch"):
        batch = listings[i : i + batch_size]
        captions = captioner.complete([_image_message(p, CAPTION_PROMPT) for _, p, _ in batch], max_tokens, 0.0)
        asks = [[{"role": "user", "content": VERIFY_PROMPT.format(
            caption=c or "", aspects="\n".join(f"- {k}: {v}" for k, v in a.items()))}] for c, (_, _, a) in zip(captions, batch)]
        replies = verifier.complete(asks, max_tokens, 0.0)
        _write_batch(batch, captions, replies, report_path, samples_path)
    return _summary(report_path, out_dir, len(done), len(listings), time.perf_counter() - start)


def _write_batch(batch, captions, replies, report_path: Path, samples_path: Path) -> None:
    # Samples first, then the report: after a kill between the two, `_done` drops the batch's samples and the
    # batch runs again, so nothing is lost or written twice.
    rows, samples = [], []
    for (listing_id, path, aspects), caption, reply in zip(batch, captions, replies):
        supported = None if caption is None else parse_supported(reply, list(aspects))
        if supported is None:
            reason = "captioner_failed" if caption is None else "verifier_unreadable"
            dropped = {name: reason for name in aspects}
        else:
            dropped = {name: "not_supported" for name in aspects if name not in supported}
        kept = {name: aspects[name] for name in aspects if name not in dropped}
        rows.append({"id": listing_id, "image": str(path), "caption": caption, "verifier": reply, "kept": kept,
                     "dropped": dropped})
        if kept:
            samples.append({"id": listing_id, "images": [str(path)], "messages": [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": json.dumps(kept, ensure_ascii=False)}]})
    with samples_path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    with report_path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        f.flush()


def _summary(report_path: Path, out_dir: Path, resumed: int, ran: int, seconds: float) -> dict[str, Any]:
    rows = [record for _, record in read_records(report_path)]
    reasons = Counter(reason for r in rows for reason in r["dropped"].values())
    summary = {"tool": "verify", "listings": len(rows), "resumed_from": resumed, "processed_now": ran,
               "aspects_kept": sum(len(r["kept"]) for r in rows), "aspects_dropped": dict(reasons),
               "samples": sum(1 for r in rows if r["kept"]), "seconds": round(seconds, 3),
               "items_per_s": round(ran / seconds, 3) if seconds and ran else None}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def backend(spec: str, device: str | None = None) -> JudgeBackend:
    """A model from its command-line name: http(s)://HOST/v1 (OpenAI-compatible), hf:FOLDER (a local Hugging Face
    causal LM, text only) or a valley3 checkpoint path (optionally ckpt:PATH)."""
    from valley3.rewards import HFJudge, HTTPJudge, PolicyJudge

    if spec.startswith(("http://", "https://")):
        return HTTPJudge(spec)
    if spec.startswith("hf:"):
        return HFJudge(spec[3:], device=device)
    return PolicyJudge(spec.removeprefix("ckpt:"), device=device)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("verify", help="keep the listing aspects a caption of the listing's image supports")
    p.add_argument("--data", required=True, help='listings JSONL: {"id", "image", "aspects": {name: value}}')
    p.add_argument("--out", required=True)
    p.add_argument("--captioner", required=True, help="a valley3 checkpoint, or http(s)://HOST/v1")
    p.add_argument("--verifier", required=True, help="a valley3 checkpoint, hf:FOLDER, or http(s)://HOST/v1")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--device", default=None)


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    summary = verify(args.data, args.out, backend(args.captioner, args.device), backend(args.verifier, args.device),
                     args.batch_size, args.max_tokens)
    print(json.dumps(summary, indent=2))
    return summary
