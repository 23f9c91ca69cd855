"""The rejection-sampling filter: band edges, stats, and kept lines written back exactly as they were read."""

from __future__ import annotations

import json

import pytest

from valley3.data.curation import Band, raw_records, rejection_stats, with_meta, write_kept
from valley3.data.formats import read_samples
from valley3.data.schema import SchemaError


def test_default_band_drops_exactly_never_and_always_right():
    band = Band()
    assert [band.verdict(p, 4) for p in range(5)] == ["never_passed", None, None, None, "always_passed"]
    assert [band.keeps(p, 1) for p in range(2)] == [False, False]  # k=1 can never keep anything
    assert [band.keeps(p, 2) for p in range(3)] == [False, True, False]


def test_inner_ends_are_inclusive_and_rates_compare_exactly():
    zpd = Band(0.25, 0.75)
    assert [zpd.verdict(p, 8) for p in range(9)] == [
        "never_passed", "below_band", None, None, None, None, None, "above_band", "always_passed"]
    assert [zpd.keeps(p, 4) for p in range(5)] == [False, True, True, True, False]  # 1/4 and 3/4 are the ends
    third = Band(1 / 3, 2 / 3)  # 0.333.. * 3 is not exactly 1 in floats; the slack keeps 1/3 and 2/3
    assert [third.keeps(p, 3) for p in range(4)] == [False, True, True, False]
    assert [Band(0.5, 1).verdict(p, 4) for p in range(5)] == [
        "never_passed", "below_band", None, None, "always_passed"]
    assert [Band(0.5, 0.5).keeps(p, 4) for p in range(5)] == [False, False, True, False, False]


@pytest.mark.parametrize("bounds", [(-0.1, 1), (0, 1.5), (0.8, 0.2)])
def test_bad_band(bounds):
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        Band(*bounds)


def test_impossible_counts():
    with pytest.raises(ValueError, match="impossible"):
        Band().verdict(5, 4)
    with pytest.raises(ValueError, match="impossible"):
        Band().verdict(0, 0)


def test_stats():
    passes = [0, 0, 1, 2, 4, 3, 3, 1]
    stats = rejection_stats(passes, 4, Band(0.5, 1), {"media": 2})
    assert stats["samples"] == 10 and stats["scored"] == 8
    assert stats["kept"] == 3  # 2, 3, 3
    assert stats["dropped"] == {"never_passed": 2, "always_passed": 1, "below_band": 2, "above_band": 0}
    assert stats["skipped"] == {"media": 2}
    assert stats["pass_histogram"] == {"0/4": 2, "1/4": 2, "2/4": 1, "3/4": 2, "4/4": 1}
    assert stats["mean_pass_rate"] == pytest.approx(14 / 32)
    assert stats["band"] == [0.5, 1] and stats["k"] == 4
    json.dumps(stats)  # stats.json material
    assert rejection_stats([], 4, Band())["mean_pass_rate"] is None


LINES = [
    '{"id": "a", "messages": [{"role": "user", "content": "Colour?"}, {"role": "assistant", "content": "Red."}]}',
    '{"messages":[{"role":"user","content":"Caf\\u00e9 \u2028 or tea?"},{"role":"assistant","content":"Tea"}],"x":1}',
    ('{"id": "c", "conversations": [{"from": "human", "value": "<image>Hat?"}, {"from": "gpt", "value": "Yes"}],'
     ' "image": "hat.png", "meta": {"source": "web"}}'),
    '{"id": "d", "messages": [{"role": "user", "content": "Price?"}, {"role": "assistant", "content": "$9"}]}',
]


def test_kept_lines_are_the_input_lines(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(LINES[0] + "\n\n" + "\n".join(LINES[1:]) + "\n", encoding="utf-8")  # a blank line is skipped
    samples = read_samples(data)
    lines = raw_records(data)
    assert lines == LINES and len(samples) == len(lines)
    assert write_kept(lines, [(3, 0.25), (1, 0.5)], tmp_path / "same.jsonl", add_meta=False) == 2
    assert (tmp_path / "same.jsonl").read_text(encoding="utf-8") == LINES[1] + "\n" + LINES[3] + "\n"  # input order

    write_kept(lines, [(2, 0.75), (0, 0.5), (1, 0.25)], tmp_path / "kept.jsonl")
    out = (tmp_path / "kept.jsonl").read_text(encoding="utf-8").split("\n")
    assert out[0] == LINES[0][:-1] + ', "meta": {"pass_rate": 0.5}}'  # every input byte kept
    assert out[1] == LINES[1][:-1] + ', "meta": {"pass_rate": 0.25}}'
    assert json.loads(out[2]) == json.loads(LINES[2]) | {"meta": {"source": "web", "pass_rate": 0.75}}
    again = read_samples(tmp_path / "kept.jsonl", media_root=tmp_path)  # S3 reads them with the normal reader
    assert [s.id for s in again] == ["a", "kept:2", "c"] and [s.turns for s in again] == [s.turns for s in samples[:3]]
    assert again[0].meta["pass_rate"] == 0.5  # a record's meta object is read flat (curricula name its fields)


def test_json_list_input(tmp_path):
    records = [json.loads(line) for line in LINES[:2]]
    data = tmp_path / "in.json"
    data.write_text(json.dumps(records, indent=2), encoding="utf-8")
    lines = raw_records(data)
    assert [json.loads(line) for line in lines] == records and len(read_samples(data)) == 2


def test_meta_that_is_not_an_object():
    with pytest.raises(SchemaError, match="record 7: 'meta' must be an object"):
        with_meta('{"id": "x", "meta": 3}', {"pass_rate": 0.5}, "record 7")
    assert with_meta("{}", {"pass_rate": 1}) == '{"meta": {"pass_rate": 1}}'
