"""The embedded demo dataset: a synthetic e-commerce catalog with images, speech and conversations."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

from valley3.data.demo_reasoning import reasoning_samples
from valley3.data.schema import ROLES
from valley3.data.templates import ChatTemplate

BRANDS = ("Acme", "Lumo", "Orvik", "Pavo", "Quilla", "Tessa", "Velmo", "Zentra")
COLOURS = {"red": (205, 35, 35), "blue": (35, 75, 205), "green": (35, 150, 65), "yellow": (235, 200, 25),
           "black": (25, 25, 25), "white": (250, 250, 250), "orange": (240, 135, 25), "purple": (130, 55, 165)}
# Materials are plausible per category so titles read like real listings.
CATEGORIES = {"shoe": ("leather", "canvas", "suede"), "bag": ("leather", "canvas", "nylon"),
              "shirt": ("cotton", "linen", "silk"), "mug": ("ceramic", "glass", "steel"),
              "lamp": ("steel", "wood", "glass"), "watch": ("steel", "leather", "titanium"),
              "hat": ("wool", "cotton", "straw"), "bottle": ("glass", "steel", "plastic")}
LINES = ("Classic", "Sport", "Lite", "Pro", "Mini", "Max")
# Shapes in a unit box: (op, coords); "ring" ops are outlines in the product colour.
SHAPES = {
    "shoe": [("polygon", [(0, .5), (.35, .5), (.45, .7), (1, .75), (1, 1), (0, 1)])],
    "bag": [("ring", [(.3, .05), (.7, .6)]), ("rect", [(.1, .35), (.9, 1)])],
    "shirt": [("polygon", [(.3, 0), (.7, 0), (1, .25), (.85, .4), (.75, .3), (.75, 1), (.25, 1), (.25, .3),
                           (.15, .4), (0, .25)])],
    "mug": [("ring", [(.55, .3), (.95, .75)]), ("rect", [(.1, .15), (.7, 1)])],
    "lamp": [("polygon", [(.3, 0), (.7, 0), (.95, .45), (.05, .45)]), ("rect", [(.45, .45), (.55, .9)]),
             ("rect", [(.2, .9), (.8, 1)])],
    "watch": [("rect", [(.35, 0), (.65, 1)]), ("ellipse", [(.15, .2), (.85, .8)])],
    "hat": [("ellipse", [(.2, .1), (.8, .85)]), ("ellipse", [(0, .65), (1, .95)])],
    "bottle": [("rect", [(.4, 0), (.6, .3)]), ("ellipse", [(.2, .2), (.8, .4)]), ("rect", [(.2, .3), (.8, 1)])],
}
SHOP_SYSTEM = "You are a shopping assistant. Answer briefly."
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _words(n: int) -> str:
    """English words for 0 <= n < 1000, so espeak says prices the way the transcripts spell them."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = "" if n % 100 == 0 else " " + _words(n % 100)
    return f"{_ONES[n // 100]} hundred{rest}"


def _catalog(n_products: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    n_val = max(1, n_products // 6)
    products = []
    for i in range(n_products):
        category = rng.choice(sorted(CATEGORIES))
        brand, colour = rng.choice(BRANDS), rng.choice(sorted(COLOURS))
        material, line = rng.choice(CATEGORIES[category]), rng.choice(LINES)
        price = round(rng.randint(5, 150) - 0.01, 2)
        pid = f"p{i:04d}"
        products.append({
            "id": pid, "title": f"{brand} {line} {colour.title()} {material.title()} {category.title()}",
            "category": category, "brand": brand, "colour": colour, "material": material, "price": price,
            "image": f"images/{pid}.png", "audio": f"audio/{pid}.wav",
            "spoken": f"{brand} {colour} {material} {category}, {_words(round(price))} dollars",
            "split": "val" if i >= n_products - n_val else "train",
        })
    return products


def _draw_image(p: dict, path: Path, size: int, seed: int) -> None:
    rng = random.Random(f"{seed}/image/{p['id']}")
    img = Image.new("RGB", (size, size), (232, 232, 232))
    draw = ImageDraw.Draw(img)
    # Jitter position and scale so the model cannot key on exact pixels.
    w = h = size * 0.52 * rng.uniform(0.85, 1.0)
    x0 = size / 2 - w / 2 + rng.uniform(-1, 1) * size * 0.06
    y0 = size * 0.48 - h / 2 + rng.uniform(-1, 1) * size * 0.03
    colour, dark, line = COLOURS[p["colour"]], (40, 40, 40), max(1, size // 24)
    for op, pts in SHAPES[p["category"]]:
        xy = [(x0 + u * w, y0 + v * h) for u, v in pts]
        if op == "ring":
            draw.ellipse(xy, outline=colour, width=line * 2)
        elif op == "polygon":
            draw.polygon(xy, fill=colour, outline=dark)
        else:
            getattr(draw, "rectangle" if op == "rect" else op)(xy, fill=colour, outline=dark)
    # Pillow's embedded default font, never a system font, so the bytes match on every machine run.
    font = ImageFont.load_default(size=max(8, size // 6))
    draw.text((2, 1), p["brand"], fill=dark, font=font)
    tag = f"${p['price']:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), tag, font=font)
    x, y = size - (right - left) - 3, size - (bottom - top) - 3
    draw.rectangle((x - 2, y - 2, size - 1, size - 1), fill=(255, 228, 120), outline=dark)
    draw.text((x - left, y - top), tag, fill=dark, font=font)
    img.save(path, format="PNG")


def _resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling by cutting the spectrum; exact enough for short, silence-padded clips."""
    n_out = round(len(wave) * sr_out / sr_in)
    spec = np.fft.rfft(wave)[: n_out // 2 + 1]
    return np.fft.irfft(spec, n_out) * (n_out / len(wave))


def _espeak(p: dict, path: Path, workdir: str) -> None:
    raw = Path(workdir) / f"{p['id']}.wav"
    subprocess.run(["espeak-ng", "-s", "240", "-w", str(raw), p["spoken"]], check=True, capture_output=True)
    wave, sr = sf.read(raw, dtype="float64")
    wave = wave.mean(axis=1) if wave.ndim == 2 else wave
    # Trim espeak's silent padding: shorter clips mean fewer audio tokens per sample.
    loud = np.flatnonzero(np.abs(wave) > 0.01)
    pad = int(0.05 * sr)
    wave = wave[max(0, loud[0] - pad): loud[-1] + pad] if len(loud) else wave
    _write_wav(path, _resample(wave, sr, 16000))


def _synthetic_speech(p: dict, path: Path) -> None:
    """A tone per attribute (brand, colour, material, category): learnable, but clearly not speech."""
    sr, dur, gap = 16000, 0.3, 0.06
    materials = sorted({m for ms in CATEGORIES.values() for m in ms})
    codes = [(BRANDS.index(p["brand"]), 300), (sorted(COLOURS).index(p["colour"]), 1100),
             (materials.index(p["material"]), 1900), (sorted(CATEGORIES).index(p["category"]), 3300)]
    t = np.arange(int(sr * dur)) / sr
    fade = np.minimum(1.0, np.minimum(t, dur - t) / 0.02)
    parts = [np.zeros(int(sr * gap))]
    for index, base in codes:
        parts += [0.4 * fade * np.sin(2 * np.pi * (base + 70 * index) * t), np.zeros(int(sr * gap))]
    _write_wav(path, np.concatenate(parts))


def _write_wav(path: Path, wave: np.ndarray) -> None:
    pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, 16000, subtype="PCM_16", format="WAV")


def _use_espeak(speech: str) -> bool:
    if speech not in ("auto", "espeak", "synthetic"):
        raise ValueError(f"speech={speech!r}; expected 'auto', 'espeak' or 'synthetic'")
    found = shutil.which("espeak-ng") is not None
    if speech == "espeak" and not found:
        raise RuntimeError("speech='espeak' but espeak-ng is not on PATH (apt-get install espeak-ng)")
    if speech == "auto" and not found:
        warnings.warn("espeak-ng not found: the demo's audio/*.wav are synthetic tone sequences, not speech",
                      RuntimeWarning, stacklevel=3)
    return speech != "synthetic" and found


def _mcq(rng: random.Random, answer: str, pool: list[str], question: str) -> tuple[str, str]:
    options = [answer, *rng.sample([x for x in pool if x != answer], 3)]
    rng.shuffle(options)
    lines = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
    return f"<image>{question}\n{lines}\nAnswer with the letter.", f"{'ABCD'[options.index(answer)]}."


def _conversations(p: dict, split: list[dict], seed: int, transcripts: bool) -> dict[str, list[dict]]:
    """About five short, templated conversations per product, keyed by the modality file they go to."""
    rng = random.Random(f"{seed}/chat/{p['id']}")
    cat, colour, brand, price = p["category"], p["colour"], p["brand"], f"${p['price']:.2f}"
    img, aud = [p["image"]], [p["audio"]]
    image_qa = {"colour": ("What colour is this product?", f"{colour.title()}."),
                "category": ("What kind of product is this?", f"A {cat}."),
                "brand": ("Which brand is shown?", f"{brand}."), "price": ("How much does it cost?", f"{price}.")}
    text_qa = {"brand": (f'Which brand makes "{p["title"]}"?', f"{brand}."),
               "material": (f'What is "{p["title"]}" made of?', f"{p['material'].title()}."),
               "category": (f'What kind of product is "{p["title"]}"?', f"A {cat}."),
               "colour": (f'What colour is "{p["title"]}"?', f"{colour.title()}.")}
    audio_qa = [("Which brand is mentioned?", f"{brand}."), ("What colour is the product described?",
                f"{colour.title()}."), ("What kind of product is described?", f"A {cat}.")]
    if transcripts:  # only real speech has words to transcribe
        audio_qa.append(("Transcribe the audio.", p["spoken"]))

    def conv(kind: str, turns: list[tuple[str, str]], images=(), audios=()) -> dict:
        messages = [{"role": "system", "content": SHOP_SYSTEM}] if rng.random() < 0.25 else []
        for user, answer in turns:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return {"id": f"{p['id']}-{kind}", "messages": messages, "images": list(images), "audios": list(audios)}

    keys = rng.sample(sorted(text_qa), rng.choice((1, 2)))
    text = [conv("text", [text_qa[k] for k in keys])]
    image_kinds = ("attr", "caption", "mcq", "multi")
    image = []
    for kind in (image_kinds[int(p["id"][1:]) % 4], image_kinds[(int(p["id"][1:]) + 2) % 4]):
        if kind == "attr":
            q, a = image_qa[rng.choice(sorted(image_qa))]
            image.append(conv(kind, [(f"<image>{q}", a)], img))
        elif kind == "caption":
            image.append(conv(kind, [("<image>Describe this product.", f"A {colour} {cat} by {brand}, priced at "
                                      f"{price}.")], img))
        elif kind == "mcq":
            on_colour = rng.random() < 0.5
            pool, answer = (sorted(COLOURS), colour) if on_colour else (sorted(CATEGORIES), cat)
            question = "What colour is this product?" if on_colour else "Which category is this product?"
            image.append(conv(kind, [_mcq(rng, answer, pool, question)], img))
        else:
            order = ["category", *rng.sample(["colour", "brand", "price"], rng.choice((1, 2)))]
            turns = [image_qa[k] for k in order]
            turns[0] = (f"<image>{turns[0][0]}", turns[0][1])
            image.append(conv(kind, turns, img))
    q, a = rng.choice(audio_qa)
    audio = [conv("audio", [(f"<audio>{q}", a)], audios=aud)]
    # Pair the image with its own speech or with that of a product of another category.
    others = [o for o in split if o["category"] != cat]
    other = rng.choice(others) if others and rng.random() < 0.5 else p
    both = conv("match", [("<image><audio>Is the spoken description about the product in the image? Answer yes "
                           "or no.", "Yes." if other is p else "No.")], img, [other["audio"]])
    return {"text": text, "image": image, "audio": audio, "omni": [*text, *image, *audio, both]}


def _audio_pair(p: dict, transcripts: bool) -> dict:
    """An audio-text pair for audio-language alignment (S0): a transcript, or a caption of the synthetic tones."""
    if transcripts:
        user, answer = "<audio>Transcribe the audio.", p["spoken"]
    else:
        user, answer = "<audio>Describe the audio.", f"{p['brand']}, {p['colour']}, {p['material']}, {p['category']}."
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"id": f"{p['id']}-asr", "messages": messages, "images": [], "audios": [p["audio"]]}


def _general(n: int, seed: int, split: str) -> list[dict]:
    """Open-domain text QA (arithmetic and comparisons): the non-e-commerce share of a domain mixture."""
    rng = random.Random(f"{seed}/general/{split}")
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        if rng.random() < 0.5:
            q, ans = f"What is {a} plus {b}?", f"{a + b}."
        else:
            q, ans = f"Which number is larger, {a} or {b}?", f"{max(a, b)}." if a != b else "They are equal."
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]
        rows.append({"id": f"general-{split}-{i:04d}", "messages": messages, "images": [], "audios": []})
    return rows


def _all_conversations(products: list[dict], seed: int, transcripts: bool) -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for split in ("train", "val"):
        members = [p for p in products if p["split"] == split]
        for p in members:
            for modality, convs in _conversations(p, members, seed, transcripts).items():
                files.setdefault(f"{modality}_{split}", []).extend(convs)
        files[f"asr_{split}"] = [_audio_pair(p, transcripts) for p in members]
        files[f"general_{split}"] = _general(len(members), seed, split)
    return files


def demo_corpus() -> list[str]:
    """Tokenizer training text: the default demo's conversations, vocabulary and chat role names."""
    products = _catalog(96, 0)
    lines = [ChatTemplate().default_system, SHOP_SYSTEM, *ROLES, *BRANDS, *LINES, *_ONES, *_TENS[2:]]
    lines += [w for v in (*COLOURS, *CATEGORIES, *sorted({m for ms in CATEGORIES.values() for m in ms}))
              for w in (v, v.title())]
    lines += [p["title"] for p in products]
    for conv in _all_conversations(products, 0, transcripts=True)["omni_train"]:
        lines += [f"{m['role']}\n{m['content']}\n" for m in conv["messages"]]
    return lines


_README = """# valley3 demo dataset (synthetic; made by `valley3.data.demo.make_demo`, seed {seed})

- `catalog.jsonl`: {n} products (id, title, category, brand, colour, material, price, image, audio,
  speech, spoken, split). Brands are invented. `speech` says how `audio/<id>.wav` was made:
  `espeak-ng` (spoken "brand colour material category, price") or `synthetic` (a tone per attribute).
- `images/<id>.png`: {size}x{size} rendering: a shape per category in the product colour, brand, price tag.
- `audio/<id>.wav`: 16 kHz mono 16-bit.
- `{{text,image,audio,omni}}_{{train,val}}.jsonl`: conversations in the messages format; `<image>`/`<audio>`
  tags mark where each item of `images`/`audios` stands; paths are relative to this folder. `omni` holds
  every conversation of the other three files plus image+audio matching questions. Val products are
  disjoint from train products.
- `asr_{{train,val}}.jsonl`: one audio-text pair per product (a transcript of the speech, or a caption of the
  synthetic tones): the alignment data of stage S0.
- `general_{{train,val}}.jsonl`: open-domain text QA (arithmetic, comparisons), as many as products: the
  non-e-commerce share of the S2 mixture.
- `reasoning_{{train,val}}.jsonl`: multi-step questions about a pictured product (discounts, budgets, attribute
  matches, shipping), each answered as `<thinking>...</thinking>` + answer at every effort level of the release's
  set (minimal / medium / high; `effort` names it); the thinking grows with the level (reasoning SFT, P1).
"""


def make_demo(out, n_products: int = 96, seed: int = 0, image_size: int = 64,
              speech: str = "auto") -> dict[str, Path]:
    """Write the demo dataset into `out` and return the written paths by name.

    Args:
        out: folder to write into (created if missing).
        n_products: number of products; about one in six goes to the val split.
        seed: everything written is a deterministic function of it.
        image_size: side of the square product images in pixels.
        speech: "espeak" (espeak-ng speech, error if missing), "synthetic" (tone sequences) or "auto"
            (espeak-ng when on PATH, else synthetic with a warning).
    """
    if n_products < 2:
        raise ValueError(f"n_products={n_products}; need at least 2 (one train, one val)")
    use_espeak = _use_espeak(speech)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    products = _catalog(n_products, seed)
    for p in products:
        p["speech"] = "espeak-ng" if use_espeak else "synthetic"
        _draw_image(p, out / p["image"], image_size, seed)
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(4) as pool:
        # espeak-ng is a subprocess per clip, so threads overlap its start-up cost.
        jobs = [pool.submit(_espeak, p, out / p["audio"], workdir) if use_espeak
                else pool.submit(_synthetic_speech, p, out / p["audio"]) for p in products]
        for job in jobs:
            job.result()
    paths = {"catalog": out / "catalog.jsonl", "images": out / "images", "audio": out / "audio",
             "readme": out / "README.md"}
    rows = {"catalog": products, **_all_conversations(products, seed, transcripts=use_espeak)}
    rows |= {f"reasoning_{split}": reasoning_samples(products, seed, split) for split in ("train", "val")}
    for name, items in rows.items():
        paths[name] = out / f"{name}.jsonl"
        with open(paths[name], "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    paths["readme"].write_text(_README.format(seed=seed, n=n_products, size=image_size), encoding="utf-8")
    return paths
