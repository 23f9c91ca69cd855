"""The demo fit logs tokens/s, samples/s, FLOP/s and the data-wait share to TensorBoard (Lightning's
ThroughputMonitor fed with real token counts and the model's FLOPs per token)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from valley3.callbacks import flops_per_token
from valley3.cli import main
from valley3.data.demo import make_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_scalars(tmp_path_factory):
    root = tmp_path_factory.mktemp("throughput")
    make_demo(root / "demo_data", n_products=6, speech="synthetic")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        main(["fit", "--config", str(ROOT / "experiments/demo/quickstart.yaml"), "--trainer.max_steps=7",
              "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
              "--trainer.logger.init_args.save_dir=runs"])
    (events_dir,) = (root / "runs/quickstart").iterdir()
    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_demo_fit_logs_throughput_and_data_wait(demo_scalars):
    # one device: Lightning logs the per-device rates (the global ones too from 2 devices on); items are tokens
    for tag in ("train/device/items_per_sec", "train/device/samples_per_sec", "train/device/flops_per_sec",
                "train/data_wait_share"):
        assert tag in demo_scalars and all(v > 0 for v in demo_scalars[tag]), tag
    assert all(0 < v < 1 for v in demo_scalars["train/data_wait_share"])
    # rates need a full window (5 batches): steps 5, 6 and 7
    assert len(demo_scalars["train/device/items_per_sec"]) == 3
    # tokens per sample: the demo's samples are tens to a few hundred tokens long
    tokens = demo_scalars["train/device/items_per_sec"][-1] / demo_scalars["train/device/samples_per_sec"][-1]
    assert 10 < tokens < 512


def test_flops_per_token_counts_frozen_parts_without_weight_gradients(stage):
    model = stage.model
    embedding = {id(p) for p in model.decoder.model.get_input_embeddings().parameters()}
    n = sum(p.numel() for p in model.parameters() if id(p) not in embedding)
    config = model.decoder.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * head_dim * 100
    assert flops_per_token(model, 100) == 6 * n + attention
    for p in model.parameters():
        p.requires_grad_(False)
    assert flops_per_token(model, 100) == 4 * n + attention
    assert flops_per_token(model, 200) - flops_per_token(model, 100) == attention
