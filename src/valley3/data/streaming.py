"""Streaming shards (litdata): samples and their media bytes in optimized chunks, read locally or from a URL.

A shard folder holds two litdata datasets that share sample indices, and a manifest:

    <out>/records/   one small item per sample: the sample in messages form, media named shard://<i>/<k><ext>
    <out>/media/     one item per sample: its media files' bytes, in the sample's media order
    <out>/valley3_shards.json   counts, sources and the format version
    <out>/summary.json          the run's report, as every `valley3 data` tool writes: counts, seconds, items/s

Setup reads only `records/` (text); a media item is fetched when its sample is processed, so training reads
the chunks it needs and no file system of media paths is involved. litdata does the chunking, the download
and caching of remote chunks (`s3://...`, `local:/...` with a `cache_dir`); the order in which samples are
drawn stays valley3's own sampler's (the same as for JSONL files, with the same exact resume).
"""

from __future__ import annotations

import json
import os
import struct
import time
from functools import partial
from dataclasses import replace
from pathlib import Path
from typing import Any

from valley3.data.formats import iter_samples, parse_record
from valley3.data.schema import MediaRef, Sample, SchemaError
from valley3.data.summary import write_summary

FORMAT_VERSION = 1
MANIFEST = "valley3_shards.json"
SCHEME = "shard://"


def _sample_record(sample: Sample, index: int) -> dict[str, Any]:
    """`sample` in messages form, with its media renamed to shard references."""
    plural = {"image": "images", "audio": "audios", "video": "videos"}
    record: dict[str, Any] = {"id": sample.id, "messages": [{"role": t.role, "content": t.content} for t in sample.turns]}
    for k, ref in enumerate(sample.media):
        record.setdefault(plural[ref.kind], []).append(f"{SCHEME}{index}/{k}{Path(ref.path).suffix.lower()}")
    if sample.meta:
        record["meta"] = sample.meta
    return {"index": index, "source": sample.source, "record": json.dumps(record, ensure_ascii=False)}


def _pack(paths: list[str]) -> bytes:
    """Media files as one blob: a count, each size, then the bytes (litdata stores one bytes field per item)."""
    blobs = [Path(p).read_bytes() for p in paths]
    return struct.pack(f"<I{len(blobs)}Q", len(blobs), *map(len, blobs)) + b"".join(blobs)


def _unpack(blob: bytes) -> list[bytes]:
    (count,) = struct.unpack_from("<I", blob)
    sizes = struct.unpack_from(f"<{count}Q", blob, 4)
    out, offset = [], 4 + 8 * count
    for size in sizes:
        out.append(blob[offset : offset + size])
        offset += size
    return out


def _media_item(media: list[list[str]], index: int) -> dict[str, Any]:
    return {"index": index, "blob": _pack(media[index])}


def _record_item(item: dict[str, Any]) -> dict[str, Any]:
    return item


def write_shards(files: list[str], out: str, chunk_bytes: str = "64MB", num_workers: int = 1,
                 format: str = "auto", media_root: str | None = None) -> dict[str, Any]:
    """Shard data files and their media into `out`; every sample is validated first (errors name file:line) and
    a missing media file stops the run before anything is written. Returns the run's summary (`summary.json`)."""
    from litdata import optimize

    start, samples = time.perf_counter(), []
    for path in files:
        samples += iter_samples(path, format, media_root)
    missing = [(s.source, m.path) for s in samples for m in s.media if not Path(m.path).is_file()]
    if missing:
        raise SchemaError(f"{len(missing)} media file(s) missing, first: {missing[0][0]}: {missing[0][1]}")
    out_dir = Path(out)
    kwargs = {"chunk_bytes": chunk_bytes, "mode": "overwrite", "verbose": False}
    optimize(fn=_record_item, inputs=[_sample_record(s, i) for i, s in enumerate(samples)],
             output_dir=str(out_dir / "records"), num_workers=1, **kwargs)
    # Indices, not paths, as inputs: litdata would otherwise take the media paths for an input folder to upload.
    media = [[m.path for m in s.media] for s in samples]
    optimize(fn=partial(_media_item, media), inputs=list(range(len(samples))),
             output_dir=str(out_dir / "media"), num_workers=num_workers, keep_data_ordered=True, **kwargs)
    media_bytes = sum(Path(m.path).stat().st_size for s in samples for m in s.media)
    manifest = {"format": FORMAT_VERSION, "samples": len(samples), "media_files": sum(len(s.media) for s in samples),
                "media_bytes": media_bytes, "sources": [str(f) for f in files]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    chunks = {name: len(list((out_dir / name).glob("*.bin"))) for name in ("records", "media")}
    summary = {"tool": "shard", "before": len(samples), "after": len(samples), "skipped": {},
               "media_files": manifest["media_files"], "media_bytes": media_bytes, "chunks": chunks}
    return write_summary(out_dir, summary, start, {"media_mb_per_s": media_bytes / 1e6})


class ShardStore:
    """Reads a shard folder (a local path or a URL litdata understands) written by `write_shards`.

    Args:
        location: the shard folder, e.g. "data/shards", "local:/mnt/shards", "s3://bucket/shards".
        cache_dir: where litdata keeps downloaded chunks of a remote location (default: its own).
    """

    def __init__(self, location: str, cache_dir: str | None = None):
        self.location, self.cache_dir = str(location).rstrip("/"), cache_dir
        self._media = None
        self._pid = None

    def _dataset(self, name: str):
        from litdata import StreamingDataset

        cache = None if self.cache_dir is None else os.path.join(self.cache_dir, name)
        return StreamingDataset(f"{self.location}/{name}", cache_dir=cache)

    def samples(self, store_no: int = 0) -> list[Sample]:
        """Every sample, in shard order, read from the records alone; media refs name this store as `store_no`
        (the position of this store in the reader's list, see `ShardSampleDataset`)."""
        records = self._dataset("records")
        samples = []
        for i in range(len(records)):
            item = records[i : i + 1][0]  # a slice keeps the chunk in the cache (remote locations too)
            if item["index"] != i:
                raise SchemaError(f"{self.location}: record {i} holds sample {item['index']}: the shards are damaged")
            sample = parse_record(json.loads(item["record"]), item["source"], "/", "messages")
            sample.media = [MediaRef(m.kind, f"{SCHEME}{store_no}/{m.path[len(SCHEME):]}") for m in sample.media]
            samples.append(sample)
        return samples

    def media(self, index: int) -> list[bytes]:
        """The media bytes of sample `index`, in its media order (opened once per process: DataLoader workers)."""
        if self._media is None or self._pid != os.getpid():
            self._media, self._pid = self._dataset("media"), os.getpid()
        item = self._media[index : index + 1][0]
        if item["index"] != index:
            raise SchemaError(f"{self.location}: media item {index} holds sample {item['index']}: the shards are damaged")
        return _unpack(item["blob"])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_media": None, "_pid": None}  # workers open their own reader


def is_shard_location(path: str) -> bool:
    return "://" in str(path) or str(path).startswith("local:") or (Path(path) / MANIFEST).is_file()


def materialize(sample: Sample, stores: list[ShardStore], folder: str) -> Sample:
    """`sample` with each shard media ref (shard://<store>/<index>/<k><ext>) written as a file into `folder`."""
    if not any(m.path.startswith(SCHEME) for m in sample.media):
        return sample
    media, blobs = [], None
    for ref in sample.media:
        store_no, index, name = ref.path[len(SCHEME) :].split("/")
        if blobs is None:
            blobs = stores[int(store_no)].media(int(index))
        path = Path(folder) / name
        path.write_bytes(blobs[int(name.split(".")[0])])
        media.append(MediaRef(ref.kind, str(path)))
    return replace(sample, media=media)


def add_parser(commands) -> None:
    p = commands.add_parser("shard", help="write data files and their media into litdata shards")
    p.add_argument("--data", required=True, nargs="+", help="messages JSONL / LLaVA JSON files")
    p.add_argument("--out", required=True, help="the shard folder")
    p.add_argument("--chunk-bytes", default="64MB", help="target chunk size (litdata)")
    p.add_argument("--workers", type=int, default=1, help="processes reading media")
    p.add_argument("--format", default="auto", choices=["auto", "messages", "llava"])
    p.add_argument("--media-root", help="folder relative media paths resolve against (default: each file's folder)")


def run_command(args) -> dict[str, Any]:
    summary = write_shards(args.data, args.out, args.chunk_bytes, args.workers, args.format, args.media_root)
    print(json.dumps(summary, indent=2))
    return summary
