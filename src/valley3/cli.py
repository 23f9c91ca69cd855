"""The `valley3` command: LightningCLI's fit/validate/test/predict plus `data` tools."""

from __future__ import annotations

import argparse
import inspect
import sys
from copy import deepcopy

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningCLI

from valley3.data.datamodules import BaseDataModule
from valley3.stages.base import OmniStage

# Families a researcher swaps with one config key; listed in --help with each class's first docstring line.
_FAMILIES = {
    "stages (model: class_path)": ("valley3.stages", "OmniStage"),
    "data (data: class_path)": ("valley3.data.datamodules", "BaseDataModule"),
    "benchmarks (data.benchmarks of valley3.eval.BenchmarkDataModule)": ("valley3.eval.benchmarks", "Benchmark"),
    "vision encoders (--model.model.vision)": ("valley3.models.vision", "VisionEncoder"),
    "audio encoders (--model.model.audio)": ("valley3.models.audio", "AudioEncoder"),
    "connectors (--model.model.vision_connector / audio_connector)": ("valley3.models.connectors", "Connector"),
    "decoders (--model.model.decoder)": ("valley3.models.decoders", "HFDecoder"),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the component list kept as written."""


def _subclasses(base: type) -> list[type]:
    found = [base] if not inspect.isabstract(base) else []
    for sub in base.__subclasses__():
        found += _subclasses(sub)
    return found


def _public_path(cls: type) -> str:
    """The shortest import path that exports `cls` (the one configs use)."""
    import importlib

    parts = cls.__module__.split(".")
    for end in range(2, len(parts) + 1):
        package = ".".join(parts[:end])
        if getattr(importlib.import_module(package), cls.__name__, None) is cls:
            return f"{package}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


class _CLI(LightningCLI):
    """LightningCLI whose stage stays the config's when `--ckpt_path` was written by another stage."""

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        self._stage_config = deepcopy(self.config[sub]["model"]) if sub else None

    def before_instantiate_classes(self) -> None:
        # With --ckpt_path, Lightning swaps the model config for the checkpoint's hyperparameters. A checkpoint
        # of another stage (a training stage under `valley3 test` with EvalStage) lends only its weights.
        sub = self.config.get("subcommand")
        if self._stage_config is not None and self.config[sub]["model"].class_path != self._stage_config.class_path:
            self.config[sub]["model"] = self._stage_config


def components_help() -> str:
    """Every swappable component, by family, with the first line of its docstring."""
    import importlib

    lines = ["swappable components (point a config key's class_path at one):"]
    for family, (module_name, base_name) in _FAMILIES.items():
        base = getattr(importlib.import_module(module_name), base_name)
        lines.append(f"  {family}:")
        for cls in _subclasses(base):
            doc = (inspect.getdoc(cls) or "").splitlines()[0] if cls.__doc__ else ""
            lines.append(f"    {_public_path(cls)}  {doc}")
    lines.append("other commands:")
    lines.append("  valley3 data demo --out DIR     write the embedded demo dataset (and its eval split)")
    lines.append("  valley3 data reject-sample ...  answer prompts k times with a checkpoint, keep by pass rate (S3)")
    lines.append("  valley3 inspect --config FILE   parameters per component and tokens per image/frame/second")
    lines.append("  valley3 pipeline FILE [-- ARGS] run a recipe's stages in order (skips finished ones)")
    lines.append("  valley3 search build|query|serve  the offline catalog search engine (agentic search)")
    lines.append("  valley3 agent eval ...          a checkpoint's tool use and accuracy, with and without tools")
    return "\n".join(lines)


def _data_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="valley3 data", description="Data tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic e-commerce demo dataset")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--n-products", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--speech", choices=["auto", "espeak", "synthetic"], default="auto")
    from valley3.stages import reject_sample as rejection

    rejection.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "reject-sample":
        rejection.run_command(args)
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


def main(argv: list[str] | None = None) -> LightningCLI | None:
    """Entry point of the `valley3` command; given `argv` (notebooks, tests) it returns the LightningCLI.

    From the console script (no `argv`) it returns None: the script hands the return value to `sys.exit`,
    which would print an object and exit with status 1.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "data":
        _data_main(args[1:])
        return None
    if args and args[0] == "pipeline":
        _pipeline_main(args[1:])
        return None
    if args and args[0] in ("search", "agent"):
        from valley3.agent.cli import main as agent_main
        from valley3.agent.search.cli import main as search_main

        (search_main if args[0] == "search" else agent_main)(args[1:])
        return None
    if args and args[0] == "inspect":
        from valley3.inspect import main as inspect_main

        inspect_main(args[1:])
        return None
    epilog = components_help()
    kwargs = {"epilog": epilog, "formatter_class": _HelpFormatter}
    subcommand_kwargs = {name: dict(kwargs) for name in ("fit", "validate", "test", "predict")}
    cli = _CLI(
        OmniStage,
        BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,  # None: LightningCLI reads sys.argv itself
        parser_kwargs={"description": __doc__, **kwargs, **subcommand_kwargs},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    return cli if argv is not None else None


if __name__ == "__main__":
    main()
