"""`valley3 chat`: talk to a checkpoint, one-shot or interactive, at an effort level and thinking budget."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import torch

from valley3.chat_display import ThinkingDisplay
from valley3.data.media import MediaError
from valley3.reasoning.budget import BudgetForcing
from valley3.reasoning.parse import format_reasoning

_HELP = """interactive commands: /effort LEVEL, /image PATH, /audio PATH, /video PATH (attached to your next
message), /reset (forget the conversation), /quit (or end of input)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valley3 chat", description=__doc__, epilog=_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a Lightning checkpoint of any stage (valley3 fit)")
    parser.add_argument("--prompt", help="one-shot: answer this and exit (else an interactive loop on stdin)")
    parser.add_argument("--effort", help="reasoning effort level (default: the checkpoint's default level when it was "
                        "trained with effort levels, else none)")
    parser.add_argument("--max-thinking-tokens", type=int, help="hard cap on thinking tokens (default: the level's)")
    parser.add_argument("--extend", type=int, default=0, help="suppress the end of thinking N times (s1)")
    parser.add_argument("--wait", default="Wait", help="text appended when the end of thinking is suppressed")
    for kind in ("image", "audio", "video"):
        parser.add_argument(f"--{kind}", action="append", default=[], help=f"a {kind} file for the first message "
                            "(repeatable)")
    parser.add_argument("--system", help="system prompt (default: the checkpoint's)")
    parser.add_argument("--hide-thinking", action="store_true", help="show only the answer")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="dim the thinking with ANSI codes (auto: when stdout is a terminal)")
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="tokens per answer (and thinking phase)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    return parser


class Chat:
    """A conversation with a policy: its messages, the media for the next message, its effort and budget.

    Args:
        policy: a `valley3.policy.Policy`.
        args: the parsed `valley3 chat` arguments.
        out: where answers stream to.
        reasoning: True when the checkpoint was trained with effort levels (then a level is always set).
    """

    def __init__(self, policy: Any, args: argparse.Namespace, out: TextIO, reasoning: bool):
        self.policy, self.args, self.out = policy, args, out
        self.levels = policy.processor.template.efforts
        self.effort = args.effort or (self.levels.default if reasoning else None)
        if self.effort is not None:
            self.levels.level(self.effort)
        tokens = policy.processor.template.tokens
        color = args.color == "always" or (args.color == "auto" and out.isatty())
        self.display = ThinkingDisplay(out, tokens.think_start, tokens.think_end, args.hide_thinking, color)
        self.messages: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
        self.media = {"images": list(args.image), "audios": list(args.audio), "videos": list(args.video)}
        self.files: dict[str, list[str]] = {"images": [], "audios": [], "videos": []}

    def ask(self, text: str) -> str:
        """Stream the answer to one user message; returns the answer (without the thinking)."""
        tags = "".join(f"<{kind[:-1]}>" * len(paths) for kind, paths in self.media.items())
        for kind, paths in self.media.items():
            self.files[kind] += paths
        self.media = {kind: [] for kind in self.media}
        self.messages.append({"role": "user", "content": tags + text})
        record: dict[str, Any] = {"messages": self.messages, **self.files}
        if self.effort is not None:
            record["effort"] = self.effort
        cap = self.args.max_thinking_tokens
        if cap is None and self.effort is not None:
            cap = self.levels.level(self.effort).max_thinking_tokens
        forcing = BudgetForcing(cap, self.args.extend, self.args.wait, self.args.max_new_tokens)
        result = forcing(self.policy, [record], streamer=lambda _, delta: self.display.feed(delta),
                         temperature=self.args.temperature, top_p=self.args.top_p, seed=self.args.seed)[0]
        self.display.finish()
        answer = result.answer if result.parsed.opens or result.parsed.closes else result.text.strip()
        # Later turns see earlier answers without their thinking (an empty block keeps the trained form).
        content = answer if self.effort is None else format_reasoning("", answer, self.display.open, self.display.close)
        self.messages.append({"role": "assistant", "content": content})
        return answer

    def command(self, line: str) -> bool:
        """Run a /command; False to quit."""
        name, _, value = line[1:].partition(" ")
        value = value.strip()
        if name in ("quit", "exit"):
            return False
        if name == "reset":
            self.messages = self.messages[:1] if self.args.system else []
            self.files = {kind: [] for kind in self.files}
        elif name == "effort" and value:
            self.levels.level(value)
            self.effort = value
        elif name in ("image", "audio", "video") and value:
            self.media[f"{name}s"].append(value)
        else:
            print(_HELP, file=self.out)
        return True

    def loop(self, lines: TextIO) -> None:
        """Read messages (and /commands) line by line until /quit or the end of input."""
        interactive = lines.isatty()
        while True:
            if interactive:
                self.out.write(f"[{self.effort or 'chat'}] > ")
                self.out.flush()
            line = lines.readline()
            if not line:
                return
            line = line.strip()
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        return
                elif line:
                    self.ask(line)
            except (ValueError, MediaError) as err:  # a bad level, an unreadable file, too long a prompt: go on
                print(f"error: {err}", file=self.out, flush=True)


def load(ckpt: str, device: str) -> tuple[Any, bool]:
    """The checkpoint's policy, with the effort levels it was trained with; and whether it was (reasoning)."""
    from valley3.policy import Policy

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    policy = Policy.from_checkpoint(ckpt, device=device)  # with the effort levels of a reasoning stage
    hparams = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters") or {}
    return policy, "efforts" in hparams


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    args = build_parser().parse_args(argv)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    policy, reasoning = load(args.ckpt, args.device)
    try:
        chat = Chat(policy, args, stdout, reasoning)
    except ValueError as err:
        raise SystemExit(f"valley3 chat: {err}") from None
    if args.prompt is not None:
        chat.ask(args.prompt)
    else:
        chat.loop(stdin)
