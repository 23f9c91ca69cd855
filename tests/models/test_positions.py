"""Hand-worked and transformers-parity tests for RoPE / mRoPE / TM-RoPE position ids."""

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from valley3.models.positions import AUDIO_IN_VIDEO as AUDIO_IN_VIDEO_KIND
from valley3.models.positions import (
    Audio, Image, Text, Video, audio_in_video_order, merged_grid, mrope_ids, placeholder_runs, rope_ids, tm_rope_ids,
)


def _t(rows):
    return torch.tensor(rows, dtype=torch.long)


def test_pure_text_all_axes():
    assert rope_ids(5).tolist() == [0, 1, 2, 3, 4]
    for fn in (mrope_ids, tm_rope_ids):
        ids, nxt = fn([Text(5)])
        assert torch.equal(ids, _t([[0, 1, 2, 3, 4]] * 3)) and nxt == 5


def test_image_after_text_then_text_resumes_at_max_plus_one():
    ids, nxt = mrope_ids([Text(3), Image(1, 4, 6), Text(2)])
    t = [0, 1, 2] + [3] * 24 + [9, 10]
    h = [0, 1, 2] + [3] * 6 + [4] * 6 + [5] * 6 + [6] * 6 + [9, 10]
    w = [0, 1, 2] + [3, 4, 5, 6, 7, 8] * 4 + [9, 10]
    assert torch.equal(ids, _t([t, h, w])) and nxt == 11
    assert torch.equal(tm_rope_ids([Text(3), Image(1, 4, 6), Text(2)])[0], ids)
    assert merged_grid((1, 8, 12), 2) == (1, 4, 6)


def test_video_timestamps_at_25_ids_per_second():
    video = Video(2, 1, 2, timestamps=[0.0, 2.0])
    expected = _t([[0, 1, 1, 51, 51, 52], [0, 1, 1, 1, 1, 52], [0, 1, 2, 1, 2, 52]])
    ids, nxt = tm_rope_ids([Text(1), video, Text(1)])
    assert torch.equal(ids, expected) and nxt == 53
    assert torch.equal(mrope_ids([Text(1), video, Text(1)], tokens_per_second=25)[0], expected)
    # Qwen2-VL: one id per temporal grid, timestamps ignored.
    assert mrope_ids([Text(1), video, Text(1)])[0][0].tolist() == [0, 1, 1, 2, 2, 3]
    # Offsets are relative to the first frame.
    shifted = tm_rope_ids([Text(1), Video(2, 1, 2, timestamps=[4.0, 6.0]), Text(1)])[0]
    assert torch.equal(shifted, expected)


def test_audio_one_second_of_aut():
    ids, nxt = tm_rope_ids([Audio(13)])  # reference: consecutive ids
    assert torch.equal(ids, _t([list(range(13))] * 3)) and nxt == 13
    ids, nxt = tm_rope_ids([Audio(13, seconds_per_token=0.08)])
    assert ids[0].tolist() == list(range(0, 26, 2)) and nxt == 25
    ids, _ = tm_rope_ids([Audio(13, seconds_per_token=1 / 13)])
    assert ids[0].tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]
    assert torch.equal(ids[0], ids[1]) and torch.equal(ids[0], ids[2])


def test_interleaved_text_image_audio_text():
    ids, nxt = tm_rope_ids([Text(2), Image(1, 2, 2), Text(1), Audio(3, seconds_per_token=0.08), Text(2)])
    t = [0, 1, 2, 2, 2, 2, 4, 5, 7, 9, 10, 11]
    h = [0, 1, 2, 2, 3, 3, 4, 5, 7, 9, 10, 11]
    w = [0, 1, 2, 3, 2, 3, 4, 5, 7, 9, 10, 11]
    assert torch.equal(ids, _t([t, h, w])) and nxt == 12


def test_audio_in_video_interleaves_by_time():
    video = Video(2, 1, 1, timestamps=[0.0, 0.08], audio=Audio(3, seconds_per_token=0.04))
    ids, nxt = tm_rope_ids([video])
    # video t: 0, 2; audio t: 0, 1, 2 -> video wins ties.
    assert ids[0].tolist() == [0, 0, 1, 2, 2] and ids[1].tolist() == [0, 0, 1, 0, 2] and nxt == 3


def test_errors_and_per_sample_restart():
    with pytest.raises(TypeError):
        mrope_ids([Audio(3)])
    with pytest.raises(ValueError):
        tm_rope_ids([Video(2, 1, 1)])
    a, _ = tm_rope_ids([Text(2), Audio(2)])
    b, _ = tm_rope_ids([Image(1, 1, 2)])
    assert a[:, 0].tolist() == [0, 0, 0] and b[:, 0].tolist() == [0, 0, 0]
    assert mrope_ids([])[0].shape == (3, 0)


# ---- parity with transformers' get_rope_index (called on a minimal stand-in for `self`) ----


def _vl_self(model_cls, **vision):
    fake = SimpleNamespace(config=SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=2, **vision)))
    fake.get_vision_position_ids = partial(model_cls.get_vision_position_ids, fake)
    return fake


def _flat_types(segments):
    out = []
    for s in segments:
        n = s.n if isinstance(s, Text) else s.t * s.h * s.w
        out += [{Text: 0, Image: 1, Video: 2}[type(s)]] * n
    return torch.tensor([out])


def test_parity_qwen2_vl_and_qwen2_5_vl():
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

    segs = [Text(3), Image(1, 4, 6), Text(2), Video(3, 4, 4, timestamps=[0.0, 0.04, 0.08]), Text(4)]
    types = _flat_types(segs)
    grids = {"image_grid_thw": torch.tensor([[1, 8, 12]]), "video_grid_thw": torch.tensor([[3, 8, 8]])}
    ref, delta = Qwen2VLModel.get_rope_index(_vl_self(Qwen2VLModel), types, types, **grids)
    ours, nxt = mrope_ids(segs)
    assert torch.equal(ref[:, 0], ours) and nxt - types.shape[1] == delta.item()
    fake = _vl_self(Qwen2_5_VLModel, tokens_per_second=25)
    ref, delta = Qwen2_5_VLModel.get_rope_index(fake, types, types, second_per_grid_ts=torch.tensor([0.04]), **grids)
    ours, nxt = mrope_ids(segs, tokens_per_second=25)
    assert torch.equal(ref[:, 0], ours) and nxt - types.shape[1] == delta.item()


def test_parity_qwen3_vl_frames_split():
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

    segs = [Text(2), Image(1, 2, 3), Text(3), Image(1, 4, 4), Text(3), Image(1, 4, 4), Text(1)]
    types = _flat_types(segs)
    types[0, 2 + 6 :] = torch.where(types[0, 2 + 6 :] == 1, 2, types[0, 2 + 6 :])  # frames are video tokens
    grids = {"image_grid_thw": torch.tensor([[1, 4, 6]]), "video_grid_thw": torch.tensor([[2, 8, 8]])}
    ref, delta = Qwen3VLModel.get_rope_index(_vl_self(Qwen3VLModel), types, types, **grids)
    ours, nxt = mrope_ids(segs)
    assert torch.equal(ref[:, 0], ours) and nxt - types.shape[1] == delta.item()


_IDS = {"text": 1, "vs": 10, "image": 11, "ve": 12, "video": 13, "as_": 20, "audio": 21, "ae": 22}


def _omni_self():
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoePreTrainedModelForConditionalGeneration as Omni,
    )

    config = SimpleNamespace(
        image_token_id=11, video_token_id=13, audio_token_id=21, vision_start_token_id=10,
        audio_start_token_id=20, position_id_per_seconds=25, audio_config=SimpleNamespace(n_window=50),
    )  # fmt: skip
    fake = SimpleNamespace(config=config, spatial_merge_size=2)
    fake.get_llm_pos_ids_for_vision = partial(Omni.get_llm_pos_ids_for_vision, fake)
    return fake, Omni


def test_parity_qwen3_omni_image_audio_video():
    fake, omni = _omni_self()
    i = _IDS
    toks = [1, 1, 1, i["vs"]] + [i["image"]] * 24 + [i["ve"], 1, i["as_"]] + [i["audio"]] * 13 + [i["ae"], 1]
    toks += [i["vs"]] + [i["video"]] * 8 + [i["ve"], 1, 1]
    input_ids = torch.tensor([toks])
    ref, delta = omni.get_rope_index(
        fake, input_ids, image_grid_thw=torch.tensor([[1, 8, 12]]), video_grid_thw=torch.tensor([[2, 4, 4]]),
        attention_mask=torch.ones_like(input_ids), audio_seqlens=torch.tensor([100]),
        second_per_grids=torch.tensor([2.0]),
    )  # fmt: skip
    segs = [Text(4), Image(1, 4, 6), Text(3), Audio(13), Text(3), Video(2, 2, 2, timestamps=[0.0, 2.0]), Text(3)]
    ours, nxt = tm_rope_ids(segs)
    assert torch.equal(ref[:, 0].long(), ours) and nxt - len(toks) == int(delta.item())


def _feat_lengths(frames: int) -> int:  # AuT tokens of `frames` mel frames (the release's formula)
    leave = frames % 100
    return ((((leave - 1) // 2 + 1) - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13


# (merged grid t, h, w; seconds per grid; mel frames of the video's sound): audio shorter and longer than the
# frames, ties between a grid and an audio token, a tall frame whose h ids pass the audio tail's, one grid.
AUDIO_IN_VIDEO = [
    ((2, 2, 2), 0.32, 100), ((4, 1, 2), 1.0, 100), ((3, 2, 1), 0.04, 1000), ((1, 10, 2), 2.0, 30),
    ((2, 3, 3), 0.5, 257), ((5, 1, 1), 0.2, 1),
]


@pytest.mark.parametrize("grid, seconds, frames", AUDIO_IN_VIDEO)
def test_parity_qwen3_omni_audio_in_video(grid, seconds, frames):
    """use_audio_in_video=True: one block per video, 2-token brackets, grids and audio merged by temporal id."""
    fake, omni = _omni_self()
    i, (t, h, w) = _IDS, grid
    video = Video(t, h, w, timestamps=[k * seconds for k in range(t)], audio=Audio(_feat_lengths(frames)))
    order = audio_in_video_order(video)
    kinds = [i["video"] if k < t * h * w else i["audio"] for k in order.tolist()]
    # ... <vs><as> block <ae><ve> text, then a separate one-token audio item and text.
    toks = [1, 1, i["vs"], i["as_"], *kinds, i["ae"], i["ve"], 1, 1, i["as_"], i["audio"], i["ae"], 1]
    input_ids = torch.tensor([toks])
    ref, delta = omni.get_rope_index(
        fake, input_ids, video_grid_thw=torch.tensor([[t, 2 * h, 2 * w]]), attention_mask=torch.ones_like(input_ids),
        use_audio_in_video=True, audio_seqlens=torch.tensor([frames, 1]), second_per_grids=torch.tensor([seconds]),
    )  # fmt: skip
    segs = [Text(4), video, Text(5), Audio(1), Text(2)]
    ours, nxt = tm_rope_ids(segs)
    assert torch.equal(ref[:, 0].long(), ours) and nxt - len(toks) == int(delta.item())
    assert placeholder_runs(toks, {i["video"]: "video", i["audio"]: "audio"})[1] == (AUDIO_IN_VIDEO_KIND, len(kinds))


def test_audio_in_video_tail_is_the_reference_next_id():
    """A one-grid tall frame and 3 audio tokens: the block ends on the audio run (ids 0..2), so text resumes at 3,
    not after the frame's h ids (0..9), as transformers' Qwen3-Omni does."""
    video = Video(1, 10, 1, timestamps=[0.0], audio=Audio(3))
    ids, nxt = tm_rope_ids([video])
    assert ids[1].tolist() == list(range(10)) + [0, 1, 2] and nxt == 3


def test_valley3_release_rule_text_image_video_audio():
    """The release's get_rope_index_qwen3omni: brackets are text, an image's t ids step 25 per grid, video grids at
    their time x 25 ids/s, audio ids consecutive (not spaced by time), everything after at max + 1."""
    segments = [Text(2), Image(1, 1, 2), Text(2), Video(2, 1, 1, timestamps=[0.0, 1.0]), Text(2), Audio(3), Text(1)]
    ids, nxt = tm_rope_ids(segments, ids_per_second=25)
    # image at 2 (w 2..3) -> text from 4; video grids at 6 and 6 + 25; text from 32; audio 34..36; text 37.
    t = [0, 1, 2, 2, 4, 5, 6, 31, 32, 33, 34, 35, 36, 37]
    h = [0, 1, 2, 2, 4, 5, 6, 6, 32, 33, 34, 35, 36, 37]
    w = [0, 1, 2, 3, 4, 5, 6, 6, 32, 33, 34, 35, 36, 37]
    assert torch.equal(ids, _t([t, h, w])) and nxt == 38


def test_audio_token_count_matches_the_release_formula():
    from valley3.models.audio import AuTEncoder
    from valley3.models.connectors.audio_mlp import AudioMLPConnector

    def release(frames):  # _get_feat_extract_output_lengths of modeling_valley_omni
        leave = frames % 100
        feat = (leave - 1) // 2 + 1
        return ((feat - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13

    encoder = AuTEncoder("tiny-aut")
    connector = AudioMLPConnector(encoder.embed_dim, 64)
    for frames in (1, 99, 100, 130, 257, 1000):
        assert connector.num_tokens(encoder.num_tokens(frames)) == release(frames)
    assert release(130) == 17 and tm_rope_ids([Audio(17)])[0][0].tolist() == list(range(17))
