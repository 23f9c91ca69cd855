"""Effort level sets: presets, custom sets from YAML-like dicts, the rendered block, clear errors."""

from __future__ import annotations

import pytest

from valley3.reasoning import FIVE, RELEASE, EffortLevels, effort_levels


def test_release_set_is_the_default():
    assert effort_levels() is RELEASE and RELEASE.names == ["minimal", "medium", "high"]
    assert [lv.thinks for lv in RELEASE.levels] == [False, True, True] and RELEASE.default == "medium"
    assert effort_levels("five") is FIVE and FIVE.names == ["none", "minimal", "low", "medium", "high"]


def test_block_names_the_level_then_lists_them_all():
    block = RELEASE.block("high")
    lines = block.splitlines()
    assert lines[0] == "Reasoning effort: high"
    assert "<thinking>" in block and "</thinking>" in block and "{open}" not in block
    assert [ln.split(":")[0] for ln in lines if ln.startswith("- ") and ln[2:].split(":")[0] in RELEASE.names] == [
        "- minimal", "- medium", "- high"]
    assert RELEASE.system_prompt("high", "Base.") == "Base.\n" + block
    assert RELEASE.system_prompt("high", "") == block


def test_custom_set_from_a_dict():
    levels = effort_levels({"levels": [{"name": "off", "description": "none", "thinks": False},
                                       {"name": "on", "description": "think", "max_thinking_tokens": 64}],
                            "line": "Reasoning: {name}", "policy": "", "listing": ""})
    assert levels.block("on") == "Reasoning: on" and levels.default == "on"
    assert levels.level("on").max_thinking_tokens == 64
    assert levels.mentions_effort("You are nice.\nReasoning: off") and not levels.mentions_effort("Reasoning")


@pytest.mark.parametrize("spec, message", [
    ("huge", "unknown effort level preset"),
    ({"levels": []}, "at least one level"),
    ({"levels": [{"name": "a b", "description": ""}]}, "unique words"),
    ({"levels": [{"name": "a", "description": ""}], "colour": 1}, "takes"),
    ({"levels": [{"name": "a", "description": ""}], "line": "Effort"}, "{name}"),
    ({"levels": [{"name": "a", "description": ""}], "default": "b"}, "unknown reasoning effort 'b'"),
])
def test_bad_sets_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        effort_levels(spec)


def test_unknown_level_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'ultra'.*\['minimal', 'medium', 'high'\]"):
        RELEASE.block("ultra")
    assert isinstance(FIVE, EffortLevels)
