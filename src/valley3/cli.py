"""The `valley3` command: LightningCLI's fit/validate/test/predict plus `data`, `pipeline`, `sweep` and `inspect`."""

from __future__ import annotations

import argparse
import importlib
import sys

from valley3.threads import set_thread_env

set_thread_env()  # before torch loads: OpenMP reads its thread settings once

# Every command, as `valley3` with no arguments and `valley3 --help` list them. fit/validate/test/predict go to
# LightningCLI (valley3._lightning); the others have their own small parsers. Heavy imports wait for a command.
COMMANDS = {
    "fit": "train a stage: valley3 fit --config EXPERIMENT.yaml [--ckpt_path last]",
    "validate": "run a stage's validation loop on a checkpoint",
    "test": "score a checkpoint: valley3 test --config experiments/demo/eval.yaml --ckpt_path CKPT",
    "predict": "answer held-out prompts; prints them and writes predictions.jsonl to the run folder",
    "data": "data tools: demo (the demo dataset), reject-sample (S3's filter), zpd (GRPO's filter), crops, dedup, "
            "quality (IFD), verify (visual verification), shard (litdata shards): valley3 data TOOL --help",
    "pipeline": "run a recipe's stages in order, skipping finished ones: valley3 pipeline FILE [-- ARGS]",
    "chat": "talk to a checkpoint: valley3 chat --ckpt CKPT [--effort high] [--max-thinking-tokens N] [--image F]",
    "sweep": "fit then test every point of an ablation grid, skipping finished ones: valley3 sweep FILE",
    "inspect": "parameters per component and tokens per image/frame/second: valley3 inspect --config FILE",
    "export": "an HF folder of a checkpoint (Qwen3-VL + AuT: the release's layout): valley3 export --ckpt F --out D",
    "serve": "OpenAI-compatible chat server for a checkpoint (judge, demos): valley3 serve --ckpt CKPT [--port N]",
    "search": "the offline catalog search engine: valley3 search build|query|serve (valley3 search --help)",
    "agent": "tool-using agents: valley3 agent eval --ckpt CKPT --data FILE --index INDEX (search-tool accuracy)",
}
LIGHTNING = ("fit", "validate", "test", "predict")
# Commands whose module's main(argv) parses the rest of the line.
_TOOLS = {"chat": "valley3.chat", "sweep": "valley3.sweep", "inspect": "valley3.inspection", "export": "valley3.stages.hf_export",
          "serve": "valley3.serve", "search": "valley3.agent.search.cli", "agent": "valley3.agent.cli"}


def usage() -> str:
    """The top-level usage: every command with one line on what it does."""
    width = max(map(len, COMMANDS))
    lines = ["usage: valley3 COMMAND [ARGS]   (valley3 COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in COMMANDS.items()]
    return "\n".join(lines)


def components_help() -> str:
    """Every swappable component, by family, with the first line of its docstring (read without importing)."""
    from valley3._components import components_help as listing

    return listing()


def _data_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="valley3 data", description="Data tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic e-commerce demo dataset")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--n-products", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--speech", choices=["auto", "espeak", "synthetic"], default="auto")
    from valley3.data import streaming
    from valley3.data.curation import image_tools
    from valley3.stages import quality, verify
    from valley3.stages import reject_sample as rejection

    rejection.add_parser(sub)
    rejection.add_zpd_parser(sub)
    image_tools.add_parsers(sub)
    for tool in (quality, streaming, verify):
        tool.add_parser(sub)
    runners = {"reject-sample": rejection, "zpd": rejection, "crops": image_tools, "dedup": image_tools,
               "quality": quality, "shard": streaming, "verify": verify}
    args = parser.parse_args(argv)
    if args.command in runners:
        runners[args.command].run_command(args)
    if args.command == "demo":
        from valley3.data.demo import make_demo
        from valley3.eval.demo_split import write_eval_split

        paths = make_demo(args.out, n_products=args.n_products, seed=args.seed, speech=args.speech)
        paths |= write_eval_split(args.out, seed=args.seed)  # <out>/eval/*.jsonl, one per benchmark suite
        from valley3.agent.demo import write_agentic_demo

        paths |= write_agentic_demo(args.out, seed=args.seed)  # search catalog + index, tool trajectories
        for name, path in paths.items():
            print(f"{name:>16}: {path}")


def _pipeline_main(argv: list[str]) -> None:
    from valley3.pipeline import Pipeline, format_table, run_pipeline

    parser = argparse.ArgumentParser(
        prog="valley3 pipeline", description="Run a recipe's stages in order (see valley3.pipeline.Step).",
        epilog="Arguments after `--` go to every fit step, e.g. `-- --trainer.max_steps=20`.",
    )
    parser.add_argument("config", help="the pipeline YAML (steps, out, args)")
    parser.add_argument("--out", help="output folder (default: the YAML's `out`)")
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    rows = run_pipeline(Pipeline.from_yaml(args.config), fit=main, out=args.out, extra_args=extra)
    print("\n" + format_table(rows))


def main(argv: list[str] | None = None):
    """Entry point of the `valley3` command; given `argv` (notebooks, tests) it returns the LightningCLI.

    From the console script (no `argv`) it returns None: the script hands the return value to `sys.exit`,
    which would print an object and exit with status 1.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(usage(), file=sys.stderr)
        raise SystemExit(2)
    if args[0] in ("-h", "--help"):
        print(__doc__ + "\n\n" + usage() + "\n\n" + components_help())
        return None
    if args[0] == "data":
        _data_main(args[1:])
        return None
    if args[0] == "pipeline":
        _pipeline_main(args[1:])
        return None
    if args[0] in _TOOLS:  # each tool's module has a main(argv); imported only when its command runs
        importlib.import_module(_TOOLS[args[0]]).main(args[1:])
        return None
    if not args[0].startswith("-") and args[0] not in LIGHTNING:
        print(f"valley3: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    from valley3._lightning import run

    cli = run(argv, __doc__)  # None: LightningCLI reads sys.argv itself
    return cli if argv is not None else None


if __name__ == "__main__":
    main()
