"""`valley3 search build|query|serve`: index a catalog, query an index, serve it over HTTP."""

from __future__ import annotations

import argparse
import json

from valley3.agent.search.encoder import TINY
from valley3.agent.search.engine import MODES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valley3 search", description="The offline catalog search engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="index a catalog (JSONL: id, title, image, text, other fields)")
    build.add_argument("--catalog", required=True, help="the catalog JSONL")
    build.add_argument("--out", required=True, help="the index folder to write (replaced if it exists)")
    build.add_argument("--encoder", default=TINY, help=f"a local SigLIP/CLIP folder, or {TINY} (random, for tests)")
    build.add_argument("--seed", type=int, default=0, help=f"initialisation seed of {TINY}")
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--text-fields", nargs="+", default=["title", "text"], help="fields BM25 indexes")
    build.add_argument("--device", default="cpu")
    query = sub.add_parser("query", help="search an index; prints one JSON line per hit")
    query.add_argument("--index", required=True)
    query.add_argument("--text", help="a text query")
    query.add_argument("--image", help="an image file to search with")
    query.add_argument("--mode", default="auto", choices=MODES)
    query.add_argument("-k", type=int, default=5)
    serve = sub.add_parser("serve", help="serve an index: POST /retrieve (Search-R1/verl schema)")
    serve.add_argument("--index", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--topk", type=int, default=3, help="results per query when a request gives no topk")
    serve.add_argument("--mode", default="auto", choices=MODES, help="mode when a request gives none")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    from valley3.agent.search.engine import SearchEngine

    if args.command == "build":
        engine = SearchEngine.build(args.catalog, args.out, encoder=args.encoder, seed=args.seed,
                                    batch_size=args.batch_size, text_fields=args.text_fields, device=args.device)
        print(f"indexed {len(engine.ids)} items into {args.out} in {engine.meta['build_seconds']:.1f} s")
    elif args.command == "query":
        if not args.text and not args.image:
            raise SystemExit("valley3 search query: give --text and/or --image")
        for rank, hit in enumerate(SearchEngine(args.index).search(args.text, args.image, args.mode, args.k), 1):
            print(json.dumps({"rank": rank, "id": hit.id, "score": hit.score, "title": hit.document["title"]},
                             ensure_ascii=False))
    else:
        from valley3.agent.search.server import serve

        print(f"serving {args.index} on http://{args.host}:{args.port}/retrieve")
        serve(SearchEngine(args.index), args.host, args.port, topk=args.topk, mode=args.mode)
