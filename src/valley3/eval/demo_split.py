"""The demo's eval split: one small JSONL per benchmark suite, built from the demo catalog's val products."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageChops

from valley3.data.demo import BRANDS, CATEGORIES, COLOURS

FASHION = ("shoe", "bag", "shirt", "hat", "watch")
VIDEO_SUBTASKS = ("GVU", "PEU", "AL", "VCR")
WHEN = ["at the start", "in the middle", "at the end"]
# Chinese names of the demo's attributes, for ChineseEcomQA's templated questions.
COLOURS_ZH = {"red": "红色", "blue": "蓝色", "green": "绿色", "yellow": "黄色", "black": "黑色", "white": "白色",
              "orange": "橙色", "purple": "紫色"}
CATEGORIES_ZH = {"shoe": "鞋", "bag": "包", "shirt": "衬衫", "mug": "马克杯", "lamp": "台灯", "watch": "手表",
                 "hat": "帽子", "bottle": "水瓶"}
MATERIALS_ZH = {"leather": "皮革", "canvas": "帆布", "suede": "麂皮", "nylon": "尼龙", "cotton": "棉", "linen": "亚麻",
                "silk": "丝绸", "ceramic": "陶瓷", "glass": "玻璃", "steel": "钢", "wood": "木", "titanium": "钛",
                "wool": "羊毛", "straw": "草", "plastic": "塑料"}


def _options(rng: random.Random, answer: str, pool: list[str], n: int = 4) -> tuple[list[str], str]:
    """``n`` options (the answer and distinct distractors from ``pool``, shuffled) and the answer's letter."""
    others = sorted({x for x in pool if x != answer})
    others += [f"none of these ({i})" for i in range(n - 1 - len(others))]  # a tiny catalog has few titles
    options = [answer, *rng.sample(others, n - 1)]
    rng.shuffle(options)
    return options, "ABCDEFGH"[options.index(answer)]


def _rec(**fields: object) -> dict:
    return fields


def _price(p: dict) -> str:
    return f"${p['price']:.2f}"


def _frames(p: dict, demo: Path, out: Path, show: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """A three-frame "clip" of a product panning across; frames not in ``show`` are empty backgrounds."""
    image = Image.open(demo / p["image"]).convert("RGB")
    (out / "frames").mkdir(exist_ok=True)
    paths = []
    for k in range(3):
        blank = Image.new("RGB", image.size, (232, 232, 232))
        frame = ImageChops.offset(image, (k - 1) * image.width // 8, 0) if k in show else blank
        name = f"frames/{p['id']}_{''.join(map(str, show))}_{k}.png"
        frame.save(out / name)
        paths.append(name)
    return paths


def _ecom_vqa(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    colours, cats, brands = sorted(COLOURS), sorted(CATEGORIES), list(BRANDS)
    prices = sorted({_price(p) for p in catalog} | {"$9.99", "$19.99", "$49.99", "$99.99"})
    rows = []
    for n, sub in enumerate(("IU", "OCR", "DS", "MIU", "PTU", *VIDEO_SUBTASKS) * 2):
        p, q = val[n % len(val)], val[(n + 1) % len(val)]
        img, media = f"../{p['image']}", {}
        if sub == "MIU":
            options = ["the first", "the second", "both", "neither"]
            answer = "both" if p["colour"] == q["colour"] else "the first"
            question = f"<image><image>Which of these products is {p['colour']}?"
            media = {"images": [img, f"../{q['image']}"]}
        elif sub in VIDEO_SUBTASKS:
            show = (rng.randrange(3),) if sub == "AL" else (0, 1, 2)
            frames = _frames(p, demo, out, show)
            question, pool, answer = {
                "GVU": ("What kind of product is shown in the video?", cats, p["category"]),
                "PEU": ("What colour is the product in the video?", colours, p["colour"]),
                "VCR": ("Which brand's product does the video show?", brands, p["brand"]),
                "AL": ("When does the product appear in the video?", WHEN, WHEN[show[0]]),
            }[sub]
            options, _ = _options(rng, answer, pool + (["never"] if sub == "AL" else []))
            media = {"video_frames": [frames]}
        else:
            question, pool, answer = {
                "IU": ("What colour is this product?", colours, p["colour"]),
                "OCR": ("Which brand name is printed on the image?", brands, p["brand"]),
                "DS": ("What price does the tag show?", prices, _price(p)),
                "PTU": ("Which category is this product?", cats, p["category"]),
            }[sub]
            options, _ = _options(rng, answer, pool)
            question, media = f"<image>{question}", {"images": [img]}
        rows.append(_rec(id=f"vqa{n:02d}", subtask=sub, question=question, options=options,
                         answer=options.index(answer), **media))
    return rows


def _omni_ecom(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    rows = []
    for n in range(12):
        p = val[n % len(val)]
        other = rng.choice([o for o in catalog if o["category"] != p["category"]] or catalog)
        img, titles = [f"../{p['image']}"], [o["title"] for o in catalog]
        returned = f'A buyer returned "{p["title"]}" saying the colour was wrong. Which colour was listed?'
        match = "<image><audio>Is the spoken description about the product in the image? Answer yes or no."
        task, row = [
            ("product_understanding", _rec(question="What kind of product is this?", images=img, answer=p["category"])),
            ("after_sales", _rec(question=returned, answer=p["colour"])),
            ("search_recommendation", _rec(question="Which listing shows the product in the image?", images=img,
                                           options=_options(rng, p["title"], titles)[0], answer=p["title"])),
            ("livestream", _rec(question=match, images=img, audios=[f"../{(other if n % 2 else p)['audio']}"],
                                answer="no" if n % 2 else "yes")),
            ("short_video", _rec(question="<video>What colour is the product in this clip?",
                                 video_frames=[_frames(p, demo, out)], answer=p["colour"])),
            ("moderation", _rec(question="Does this listing image show a price tag? Answer yes or no.", images=img,
                                answer="yes")),
        ][n % 6]
        rows.append({"id": f"omni{n:02d}", "task": task, **row, **({"answer_format": "json"} if n >= 6 else {})})
    return rows


def _ecom_caption(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    captions = [
        (f"A {p['colour']} {p['category']} by {p['brand']}, priced at {_price(p)}.",
         f"{p['brand']} {p['colour']} {p['material']} {p['category']}.")
        for p in val[:8]
    ]
    return [
        _rec(id=f"cap{n:02d}", images=[f"../{p['image']}"], prompt="Describe this product.", captions=list(caps))
        for n, (p, caps) in enumerate(zip(val[:8], captions))
    ]


def _ebay(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    fashion = [p for p in val if p["category"] in FASHION] or val
    rows = []
    for n in range(2):
        p, f, q = val[n % len(val)], fashion[n % len(fashion)], val[(n + 1) % len(val)]
        img, f_img = [f"../{p['image']}"], [f"../{f['image']}"]
        dae = {"brand": p["brand"], "colour": p["colour"], "category": p["category"], "price": _price(p)}
        ask = "Do these listing images show the same item? Reply as JSON with keys same_item, brand, price_tag_visible."
        rows += [
            _rec(id=f"asp-g{n}", task="aspect", subtask="general", images=img, aspect="brand", answer=p["brand"]),
            _rec(id=f"asp-f{n}", task="aspect", subtask="fashion", images=f_img, aspect="colour", answer=f["colour"]),
            _rec(id=f"asp-t{n}", task="aspect", subtask="fashion_title_category", images=f_img, aspect="material",
                 title=f["title"], category=f["category"], answer=f["material"]),
            _rec(id=f"df-c{n}", task="deep_fashion", images=img, attribute="colour", classes=sorted(COLOURS),
                 answer=p["colour"]),
            _rec(id=f"df-k{n}", task="deep_fashion", images=img, attribute="category", classes=sorted(CATEGORIES),
                 answer=p["category"]),
            _rec(id=f"dae{n}", task="dae", images=img, answer=dae),
            _rec(id=f"ii{n}", task="item_intelligence", images=[*img, f"../{q['image']}"], question=ask,
                 answer={"same_item": p is q, "brand": p["brand"], "price_tag_visible": True}),
        ]
    return rows


def _ecommmmu(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    rows = []
    for n, sub in enumerate(("AP", "BQA", "CP", "SR", "MPC", "PSI", "SA", "PRP") * 2):
        p, q = val[n % len(val)], val[(n + 3) % len(val)]
        img = [f"../{p['image']}"]
        if sub == "SR":
            others = sorted({o["id"] for o in catalog} - {p["id"]})
            candidates = [*rng.sample(others, min(3, len(others))), p["id"]]
            rng.shuffle(candidates)
            row = _rec(question=f'Which candidate listing is "{p["title"]}"?', candidates=candidates, answer=p["id"])
        elif sub == "BQA":
            row = _rec(question=f"Is this a {p['category']}? Answer yes or no.", answer="yes")
        elif sub == "SA":
            review = f'Review: "Love this {p["colour"]} {p["category"]}, great quality!"'
            row = _rec(question=f"{review} Is the review positive or negative?", answer="positive")
        elif sub == "CP":  # click-through prediction: would the user buy the candidate, given what they bought
            row = _rec(question="<image><image>The user bought the first item. Would they buy the second one? "
                       "Answer yes or no.", images=[*img, f"../{q['image']}"],
                       answer="yes" if p["category"] == q["category"] else "no")
        elif sub == "PSI":
            row = _rec(question="<image><image>Could the second item substitute for the first? Answer yes or no.",
                       images=[*img, f"../{q['image']}"], answer="yes" if p["category"] == q["category"] else "no")
        else:
            relations = ["same product", "same category", "same brand", "unrelated"]
            question, pool, answer = {
                "AP": ("What is the colour aspect of this item?", sorted(COLOURS), p["colour"]),
                "MPC": ("Which brand sells this item?", list(BRANDS), p["brand"]),
                "PRP": (f'How is this item related to "{p["title"]}"?', relations, "same product"),
            }[sub]
            options, letter = _options(rng, answer, pool)
            row = _rec(question=question, options=options, answer=letter)
        rows.append({"id": f"mmmu{n:02d}", "subtask": sub, "images": img, **row})
    return rows


def _ecinstruct(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    rows = []
    for n in range(3):
        p, q = val[n % len(val)], val[(n + 1) % len(val)]
        title = p["title"]
        rows += [
            _rec(task="Attribute_Value_Extraction", instruction="Extract the brand and colour as a JSON list of "
                 "attribute, value and source objects.", input=title,
                 output=[{"attribute": "brand", "value": p["brand"], "source": "title"},
                         {"attribute": "colour", "value": p["colour"], "source": "title"}]),
            _rec(task="Multiclass_Product_Classification", instruction="Which category is this product?",
                 input=title, options=sorted(CATEGORIES), output=p["category"]),
            _rec(task="Product_Matching", instruction="Do the two titles describe the same product? Answer yes or no.",
                 input=f"{title} | {q['title']}", output="yes" if p is q else "no"),
            _rec(task="Sentiment_Analysis", instruction="Is the review positive or negative?",
                 input=f"The {p['category']} broke after one day.", options=["positive", "negative"],
                 output="negative"),
            _rec(task="Sequential_Recommendation", instruction="The user bought these items; which comes next?",
                 input=f"History: {q['id']}. Candidates: {p['id']}, {q['id']}", output=p["id"]),
            _rec(task="Answer_Generation", instruction="Answer the shopper's question about the product.",
                 input=f"{title}. Question: what is it made of?", output=f"It is made of {p['material']}."),
        ]
    return [{"id": f"eci{n:02d}", **row} for n, row in enumerate(rows)]


def _chinese_ecomqa(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    rows = []
    for n in range(2):
        p = val[n % len(val)]
        colour, kind, material = COLOURS_ZH[p["colour"]], CATEGORIES_ZH[p["category"]], MATERIALS_ZH[p["material"]]
        item = f"“{p['title']}”"  # the answers are the Chinese names of the title's attributes
        rows += [
            _rec(category="category_concept", sub_category=kind, question=f"{item}属于什么商品品类？", answer=kind),
            _rec(category="attribute_concept", sub_category=kind, question=f"{item}是什么颜色的？", answer=colour),
            _rec(category="attribute_concept", sub_category=kind, question=f"{item}是什么材质的？", answer=material),
            _rec(category="brand_concept", sub_category=kind, question=f"{item}是哪个品牌的商品？",
                 answer=p["brand"]),
        ]
    return [{"id": f"zh{n:02d}", **row} for n, row in enumerate(rows)]


def _mmecinstruct(val: list[dict], catalog: list[dict], rng: random.Random, demo: Path, out: Path) -> list[dict]:
    relations = ["A: also bought", "B: also viewed", "C: bought together", "D: unrelated"]
    relevance = ["A: exact", "B: substitute", "C: complement", "D: irrelevant"]
    rows = []
    for n in range(2):
        p, q = val[n % len(val)], val[(n + 1) % len(val)]
        img, pair = [f"../{p['image']}"], [f"../{p['image']}", f"../{q['image']}"]
        two, same = f"Product 1: <image>{p['title']}. Product 2: <image>{q['title']}.", p["category"] == q["category"]
        new = [
            _rec(task="Answerability_Prediction", instruction="Can the question be answered from the product image "
                 "and title? Answer yes or no.", input=f"{p['title']}. Question: what colour is it?", images=img,
                 output="yes"),
            _rec(task="Category_Classification", instruction="Which category is the product in the image?",
                 input=p["title"], images=img, options=sorted(CATEGORIES), output=p["category"]),
            _rec(task="Product_Relation_Prediction", instruction="How are the two products related?", input=two,
                 images=pair, options=relations, output="A" if same else "D"),
            _rec(task="Product_Substitute_Identification", instruction="Could product 2 substitute for product 1? "
                 "Answer yes or no.", input=two, images=pair, output="yes" if same else "no"),
            _rec(task="Multiclass_Product_Classification", instruction="How relevant is the product to the query?",
                 input=f"Query: {p['colour']} {p['category']}. Product: {p['title']}", images=img, options=relevance,
                 output="A"),
            _rec(task="Sentiment_Analysis", instruction="Is the review of the product in the image positive or "
                 "negative?", input=f"The {p['category']} broke after one day.", images=img,
                 options=["A: positive", "B: negative"], output="B"),
            _rec(task="Sequential_Recommendation", instruction="The user bought the item in the image; which "
                 "candidate comes next? Answer with its id.", input=f"History: {q['id']}. Candidates: {p['id']}, "
                 f"{q['id']}", images=[f"../{q['image']}"], output=p["id"]),
        ]
        caption = {f"../{o['image']}": f"A {o['colour']} {o['material']} {o['category']}." for o in (p, q)}
        rows += [{**row, "caption_info": [caption[i] for i in row["images"]]} for row in new]
    return [{"id": f"mmeci{n:02d}", **row} for n, row in enumerate(rows)]


SUITES = {"omni_ecom": _omni_ecom, "ecom_vqa": _ecom_vqa, "ecom_caption": _ecom_caption, "ebay": _ebay,
          "ecommmmu": _ecommmmu, "ecinstruct": _ecinstruct, "chinese_ecomqa": _chinese_ecomqa,
          "mmecinstruct": _mmecinstruct}


def write_eval_split(demo_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write ``<demo_dir>/eval/<suite>.jsonl`` for every suite (and the video frames they use) from the demo
    catalog written by ``make_demo``; return the paths by suite.

    Args:
        demo_dir: the folder ``make_demo`` wrote (its catalog, images and audio are read, never changed).
        seed: the options' order and distractors are a deterministic function of it.
    """
    demo = Path(demo_dir)
    catalog = [json.loads(line) for line in (demo / "catalog.jsonl").read_text(encoding="utf-8").splitlines() if line]
    val = [p for p in catalog if p["split"] == "val"] or catalog
    out = demo / "eval"
    out.mkdir(exist_ok=True)
    paths = {}
    for name, make in SUITES.items():
        rows = make(val, catalog, random.Random(f"{seed}/eval/{name}"), demo, out)
        paths[f"eval/{name}"] = out / f"{name}.jsonl"
        with open(paths[f"eval/{name}"], "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return paths
