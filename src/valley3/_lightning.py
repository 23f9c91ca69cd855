"""The LightningCLI behind `valley3 fit|validate|test|predict` (imported only for those commands: torch is heavy)."""

from __future__ import annotations

import argparse
from copy import deepcopy

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningCLI

from valley3._components import components_help
from valley3.data.datamodules import BaseDataModule
from valley3.resume import resolve_last
from valley3.stages.base import OmniStage

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the component list kept as written."""


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
        if sub:
            resolve_last(self.config[sub], sub)


def run(argv: list[str] | None, description: str) -> LightningCLI:
    """LightningCLI over any OmniStage and DataModule; `argv` None reads sys.argv."""
    kwargs = {"epilog": components_help(), "formatter_class": _HelpFormatter}
    return _CLI(
        OmniStage,
        BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        parser_kwargs={"description": description, **kwargs, **{name: dict(kwargs) for name in SUBCOMMANDS}},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
