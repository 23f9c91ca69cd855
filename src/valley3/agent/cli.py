"""`valley3 agent eval`: a checkpoint's tool use and accuracy on held-out questions, with and without tools."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valley3 agent", description="Tool-using agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="greedy rollouts with the search tools on held-out questions")
    ev.add_argument("--ckpt", required=True, help="a Lightning checkpoint of any stage")
    ev.add_argument("--data", required=True, help="messages JSONL: prompt turns, then the reference's last turn")
    where = ev.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="a search index folder (in-process engine)")
    where.add_argument("--url", help="a search server (valley3 search serve)")
    ev.add_argument("--k", type=int, default=3, help="results per search")
    ev.add_argument("--fields", nargs="*", default=None, help="catalog fields shown per result (default: all)")
    ev.add_argument("--images", type=int, default=1, help="top results whose photo is shown")
    ev.add_argument("--max-turns", type=int, default=4)
    ev.add_argument("--max-new-tokens", type=int, default=128)
    ev.add_argument("--out", help="write the summary and per-question rows here (JSON)")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    from valley3.agent.evaluate import evaluate_agent
    from valley3.agent.search.tools import search_tools
    from valley3.agent.tools import ToolRegistry
    from valley3.data.formats import read_samples
    from valley3.policy import Policy

    if args.index:
        from valley3.agent.search.engine import SearchEngine

        searcher = SearchEngine(args.index)
    else:
        from valley3.agent.search.server import SearchClient

        searcher = SearchClient(args.url)
    tools = ToolRegistry(search_tools(searcher, k=args.k, fields=args.fields, images=args.images))
    policy = Policy.from_checkpoint(args.ckpt)
    result = evaluate_agent(policy, tools, read_samples(args.data), args.max_turns, args.max_new_tokens)
    print("| metric | value |\n|---|---:|")
    for key, value in result["summary"].items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
