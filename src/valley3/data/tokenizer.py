"""Tiny byte-level BPE for tests/demo; regenerate: python -m valley3.data.tokenizer src/valley3/assets/tiny_tokenizer"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from valley3.data.demo import demo_corpus
from valley3.data.templates import SpecialTokens


def build_tokenizer(out_dir, corpus: Iterable[str] | None = None, vocab_size: int = 1024,
                    tokens: SpecialTokens = SpecialTokens()) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `corpus`, save it with `save_pretrained(out_dir)` and return it.

    Every UTF-8 string round-trips (the 256 byte symbols are always in the vocabulary) and every
    special token of `tokens` encodes to exactly one id.

    Args:
        out_dir: folder to save into; `AutoTokenizer.from_pretrained(out_dir)` loads it offline.
        corpus: training text; None uses `valley3.data.demo.demo_corpus()` so demo samples tokenize compactly.
        vocab_size: upper bound on the whole vocabulary, special tokens and byte alphabet included.
        tokens: special tokens of the chat template; `pad` pads and `im_end` ends a sequence.
    """
    specials = tokens.all()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(specials) + len(alphabet):
        raise ValueError(f"vocab_size={vocab_size} cannot hold {len(specials)} specials and 256 byte symbols")
    backend = Tokenizer(models.BPE())
    # No prefix space: ChatML puts content right after "\n", and a prefix would change the text.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet,
                                  show_progress=False)
    backend.train_from_iterator(list(demo_corpus() if corpus is None else corpus), trainer)
    extra = [s for s in specials if s not in (tokens.pad, tokens.im_end)]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=tokens.pad, eos_token=tokens.im_end,
                                        extra_special_tokens=extra)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m valley3.data.tokenizer OUT_DIR")
    tok = build_tokenizer(Path(sys.argv[1]))
    print(f"saved a {len(tok)}-token tokenizer to {sys.argv[1]}")
