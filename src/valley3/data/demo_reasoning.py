"""Effort-tagged reasoning samples over the demo catalog: multi-step price, discount and attribute questions."""

from __future__ import annotations

import random
from dataclasses import dataclass

from valley3.reasoning.effort import EffortLevels, effort_levels
from valley3.reasoning.parse import format_reasoning

KINDS = ("discount", "budget", "match", "shipping")
# Thinking depth of the levels that think, counted from the most effortful one down, so "high" and "medium"
# read the same in every level set: each depth writes at least 1.5x the tokens of the one below.
MAX_DEPTH = 4


@dataclass
class _Problem:
    question: str
    note: str  # the one fact and result (depth 1)
    facts: list[str]  # what the picture shows
    steps: list[str]  # the working
    checks: list[str]  # verification
    alternative: str  # another reading of the question, and why the answer stands
    answer: str

    def thinking(self, depth: int) -> str:
        """The reasoning at `depth` (0: none, 1: a note, 2: the steps, 3: + what the picture shows and a check, 4: everything)."""
        if depth == 0:
            return ""
        if depth == 1:
            lines = [self.note]
        elif depth == 2:
            lines = self.steps
        elif depth == 3:
            lines = self.facts + self.steps + self.checks[:1]
        else:
            # No closing "So the answer is ..." line: a small model that saw the answer end a line before
            # </thinking> tends to write </thinking> again after the real answer.
            lines = ["First I read the picture, then I work it out step by step, then I check it.", *self.facts,
                     *self.steps, *self.checks, self.alternative]
        return "\n".join(lines)


def _usd(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def _discount(p: dict, rng: random.Random) -> _Problem:
    price, d, q = round(p["price"] * 100), rng.choice((10, 20, 25, 30, 50)), rng.choice((2, 3, 4))
    cut = (price * d + 50) // 100
    sale, total, full = price - cut, q * (price - cut), q * price
    whole_cut = (full * d + 50) // 100
    return _Problem(
        question=f"<image>This {p['category']} is {d}% off today. What do {q} of them cost?",
        note=f"{_usd(price)} at {d}% off is {_usd(sale)}; {q} cost {_usd(total)}.",
        facts=[f"The price tag shows {_usd(price)}."],
        steps=[f"{d}% of {_usd(price)} is {_usd(cut)}.", f"The sale price is {_usd(price)} - {_usd(cut)} = {_usd(sale)}.",
               f"{q} of them cost {q} x {_usd(sale)} = {_usd(total)}."],
        checks=[f"Check: {_usd(total)} / {q} = {_usd(sale)}, and {_usd(sale)} + {_usd(cut)} = {_usd(price)}.",
                f"Check: {_usd(cut)} is about {d}% of {_usd(price)}, as it should be."],
        alternative=f"If the {d}% came off the whole order, {_usd(full)} - {_usd(whole_cut)} = {_usd(full - whole_cut)}; "
                    f"the tag is per item, so I keep {_usd(total)}.",
        answer=f"{_usd(total)}.",
    )


def _budget(p: dict, rng: random.Random) -> _Problem:
    price = round(p["price"] * 100)
    have = rng.randint(price // 100 + 1, 4 * price // 100 + 20) * 100
    n = have // price
    spent, left = n * price, have - n * price
    return _Problem(
        question=f"<image>I have {_usd(have)}. How many of these can I buy, and how much is left?",
        note=f"{_usd(have)} buys {n} at {_usd(price)}, {_usd(left)} left.",
        facts=[f"The price tag shows {_usd(price)}."],
        steps=[f"{_usd(have)} / {_usd(price)} is {have / price:.2f}, so I can buy {n}.",
               f"{n} cost {n} x {_usd(price)} = {_usd(spent)}.", f"{_usd(have)} - {_usd(spent)} = {_usd(left)} is left."],
        checks=[f"Check: one more would cost {_usd(spent + price)}, more than {_usd(have)}.",
                f"Check: {_usd(spent)} + {_usd(left)} = {_usd(have)}."],
        alternative="If tax were added, fewer might fit, but the question names no tax, so I leave it out.",
        answer=f"{n}, with {_usd(left)} left.",
    )


def _match(p: dict, rng: random.Random, colours: list[str], categories: list[str]) -> _Problem:
    price, colour, cat = round(p["price"] * 100), p["colour"], p["category"]
    want_colour = colour if rng.random() < 0.6 else rng.choice([c for c in colours if c != colour])
    want_cat = cat if rng.random() < 0.7 else rng.choice([c for c in categories if c != cat])
    limit = (price // 100 + rng.choice((-20, -5, 10, 30))) * 100
    limit = max(limit, 500)
    ok = {"colour": colour == want_colour, "kind": cat == want_cat, "price": price < limit}
    fails = [k for k, v in ok.items() if not v]
    reason = {"colour": f"it is {colour}", "kind": f"it is a {cat}", "price": f"it costs {_usd(price)}"}
    answer = "Yes." if not fails else f"No: {', '.join(reason[k] for k in fails)}."
    word = {True: "fits", False: "does not fit"}
    return _Problem(
        question=f"<image>I want a {want_colour} {want_cat} for under {_usd(limit)}. Does this one fit?",
        note=f"A {colour} {cat} at {_usd(price)}: it {word[not fails]}.",
        facts=[f"The picture shows a {colour} {cat} by {p['brand']}.", f"The price tag shows {_usd(price)}."],
        steps=[f"Colour: {colour} {'matches' if ok['colour'] else 'is not'} {want_colour}.",
               f"Kind: a {cat} {'is' if ok['kind'] else 'is not'} a {want_cat}.",
               f"Price: {_usd(price)} is {'under' if ok['price'] else 'not under'} {_usd(limit)}."],
        checks=[f"All three must hold for a yes; {len(fails)} of them fail.",
                f"Check again: colour {colour}, kind {cat}, price {_usd(price)} against {_usd(limit)}."],
        alternative=f"If under meant at most, {_usd(price)} against {_usd(limit)} gives the same result, as they differ.",
        answer=answer,
    )


def _shipping(p: dict, rng: random.Random) -> _Problem:
    price, q = round(p["price"] * 100), rng.choice((1, 2, 3))
    limit, fee = rng.choice((25, 50, 75, 100)) * 100, rng.choice((499, 599, 750))
    sub = q * price
    ship = 0 if sub > limit else fee
    return _Problem(
        question=f"<image>Shipping costs {_usd(fee)} unless the order is over {_usd(limit)}. "
                 f"What do I pay for {q} of these?",
        note=f"{q} x {_usd(price)} = {_usd(sub)}, shipping {_usd(ship)}, total {_usd(sub + ship)}.",
        facts=[f"The price tag shows {_usd(price)}."],
        steps=[f"{q} x {_usd(price)} = {_usd(sub)}.",
               f"{_usd(sub)} is {'over' if ship == 0 else 'not over'} {_usd(limit)}, so shipping is {_usd(ship)}.",
               f"The total is {_usd(sub)} + {_usd(ship)} = {_usd(sub + ship)}."],
        checks=[f"Check: {_usd(sub + ship)} - {_usd(ship)} = {_usd(sub)}, and {_usd(sub)} / {q} = {_usd(price)}.",
                f"Check: the limit is {_usd(limit)} and the goods alone come to {_usd(sub)}."],
        alternative=f"If at least {_usd(limit)} were enough, {_usd(sub)} against {_usd(limit)} gives the same result, "
                    "as they differ.",
        answer=f"{_usd(sub + ship)}.",
    )


def _depths(levels: EffortLevels) -> dict[str, int]:
    thinking = [lv.name for lv in levels.levels if lv.thinks]
    if len(thinking) > MAX_DEPTH:
        raise ValueError(f"the demo writes at most {MAX_DEPTH} thinking depths; {thinking} think")
    top = {name: MAX_DEPTH - i for i, name in enumerate(reversed(thinking))}
    return {lv.name: top.get(lv.name, 0) for lv in levels.levels}


def reasoning_samples(products: list[dict], seed: int, split: str, efforts=None, per_kind: int = 1) -> list[dict]:
    """Every question kind `per_kind` times per product of `split`, each answered at every effort level.

    A record carries `effort`; the template puts the level's block into the system prompt.
    """
    levels = effort_levels(efforts)
    depths = _depths(levels)
    colours = sorted({p["colour"] for p in products})
    categories = sorted({p["category"] for p in products})
    rows = []
    for p in (p for p in products if p["split"] == split):
        rng = random.Random(f"{seed}/reasoning/{p['id']}")
        for kind in KINDS:
            for i in range(per_kind):
                problem = (_match(p, rng, colours, categories) if kind == "match"
                           else {"discount": _discount, "budget": _budget, "shipping": _shipping}[kind](p, rng))
                for name, depth in depths.items():
                    answer = format_reasoning(problem.thinking(depth), problem.answer)
                    messages = [{"role": "user", "content": problem.question},
                                {"role": "assistant", "content": answer}]
                    rows.append({"id": f"{p['id']}-{kind}{i}-{name}", "effort": name, "task": kind,
                                 "messages": messages, "images": [p["image"]], "audios": []})
    return rows
