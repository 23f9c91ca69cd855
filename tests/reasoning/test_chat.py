"""`valley3 chat` end to end on a tiny trained checkpoint: one-shot with an image and an audio clip, the interactive
loop through piped stdin, thinking dimmed or hidden, budgets and effort levels."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from valley3.chat_display import DIM, RESET, ThinkingDisplay
from valley3.cli import main
from valley3.reasoning.budget import BudgetForcing
from valley3.reasoning.parse import format_reasoning

from .conftest import record

ROOT = Path(__file__).resolve().parents[2]


def test_one_shot_with_image_and_audio_streams_dimmed_thinking(reasoning_ckpt, media, capsys):
    ckpt, policy = reasoning_ckpt
    args = ["chat", "--ckpt", str(ckpt), "--prompt", "What is 3 plus 4?", "--image", media["red"], "--audio",
            media["tone"], "--effort", "high", "--max-thinking-tokens", "6", "--max-new-tokens", "16"]
    main([*args, "--color", "always"])
    dimmed = capsys.readouterr().out
    assert dimmed.startswith(DIM + "<thinking>\n") and "</thinking>" + RESET + "\n\n" in dimmed
    main([*args, "--color", "never"])
    plain = capsys.readouterr().out
    prompt = {"messages": [{"role": "user", "content": "<image><audio>What is 3 plus 4?"}], "effort": "high",
              "images": [media["red"]], "audios": [media["tone"]], "videos": []}
    expected = BudgetForcing(6, max_new_tokens=16)(policy, [prompt], temperature=0.0, seed=0)[0]
    assert plain == expected.text + "\n" and expected.thinking_tokens <= 6 and expected.parsed.ok
    assert dimmed.replace(DIM, "").replace(RESET, "") == plain
    main([*args, "--hide-thinking"])
    assert capsys.readouterr().out == expected.text.split("</thinking>")[1].lstrip("\n") + "\n"


def test_interactive_loop_through_piped_stdin(reasoning_ckpt):
    ckpt, policy = reasoning_ckpt
    lines = "What is 3 plus 4?\n/effort minimal\nWhat is 5 plus 6?\n/effort ultra\n/quit\nnever read\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "valley3.cli", "chat", "--ckpt", str(ckpt), "--max-new-tokens", "64"],
                          input=lines, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    forcing = BudgetForcing(max_new_tokens=64)
    first = forcing(policy, [record(3, 4, "medium", answered=False)], temperature=0, seed=0)[0]  # the default level
    history = [{"role": "user", "content": "What is 3 plus 4?"},
               {"role": "assistant", "content": format_reasoning("", first.answer)},
               {"role": "user", "content": "What is 5 plus 6?"}]
    second = forcing(policy, [{"messages": history, "effort": "minimal"}], temperature=0, seed=0)[0]
    error = "error: unknown reasoning effort 'ultra'; the levels are ['minimal', 'medium', 'high']\n"
    assert proc.stdout == first.text + "\n" + second.text + "\n" + error  # nothing read after /quit


def test_interactive_loop_keeps_the_conversation(reasoning_ckpt, monkeypatch, capsys):
    ckpt, _ = reasoning_ckpt
    monkeypatch.setattr(sys, "stdin", io.StringIO("What is 1 plus 2?\nAnd 2 plus 2?\n"))
    from valley3 import chat

    seen = []
    real = chat.BudgetForcing.__call__

    def spy(self, policy, prompts, **kwargs):
        seen.append([m["role"] for m in prompts[0]["messages"]])
        return real(self, policy, prompts, **kwargs)

    monkeypatch.setattr(chat.BudgetForcing, "__call__", spy)
    main(["chat", "--ckpt", str(ckpt), "--effort", "minimal", "--hide-thinking", "--max-new-tokens", "8"])
    assert seen == [["user"], ["user", "assistant", "user"]]
    out = capsys.readouterr().out
    assert out.strip() and "thinking>" not in out


def test_unknown_effort_is_a_clear_error(reasoning_ckpt):
    ckpt, _ = reasoning_ckpt
    with pytest.raises(SystemExit, match=r"unknown reasoning effort 'ultra'.*\['minimal', 'medium', 'high'\]"):
        main(["chat", "--ckpt", str(ckpt), "--effort", "ultra", "--prompt", "hi"])


def test_display_hides_a_stray_close_marker():
    out = io.StringIO()
    display = ThinkingDisplay(out, hide=True)
    display.feed("8.\n</thin")
    display.feed("king>\n\n28.")
    display.finish()
    assert out.getvalue() == "8.\n28.\n"


@pytest.mark.parametrize("cut", [1, 3, 7])
def test_display_finds_markers_split_over_deltas(cut):
    text = "<thinking>\nstep one\n</thinking>\n\nanswer"
    for hide, want in ((False, DIM + "<thinking>\nstep one\n</thinking>" + RESET + "\n\nanswer\n"), (True, "answer\n")):
        out = io.StringIO()
        display = ThinkingDisplay(out, hide=hide)
        for i in range(0, len(text), cut):
            display.feed(text[i : i + cut])
        display.finish()
        assert out.getvalue() == want
