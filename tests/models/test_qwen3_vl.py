"""Qwen3VLDecoder: logits equal transformers' Qwen3-VL, TM-RoPE from tokens, packing, and a Valley3 training step."""

import numpy as np
import pytest
import torch

from valley3.models.decoders import Qwen3VLDecoder
from valley3.models.omni import OmniModel

from ..conftest import forward

IMG, VID, AUD, VS, VE, AS, AE = 1000, 1001, 1002, 1003, 1004, 1005, 1006
TOKENS = {"image": IMG, "video": VID, "audio": AUD}
HF_IDS = {"image_token_id": IMG, "video_token_id": VID, "vision_start_token_id": VS, "vision_end_token_id": VE}


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    return Qwen3VLDecoder("tiny-qwen3-vl", config=HF_IDS).eval()


def _ids(*parts):
    return torch.tensor([[x for part in parts for x in part]])


def test_patchify_matches_qwen_image_processor(decoder):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    picture = torch.rand(3, 64, 96)
    processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, do_resize=False,
                                      do_rescale=False, do_normalize=False)
    ref = processor(images=[picture.permute(1, 2, 0).numpy()], return_tensors="pt", input_data_format="channels_last")
    rows, grid = decoder.patchify(picture.unsqueeze(0))
    assert grid == ref["image_grid_thw"][0].tolist() == [1, 4, 6]
    assert torch.allclose(rows, ref["pixel_values"], atol=1e-6)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_logits_equal_transformers_qwen3_vl(decoder, kind):
    torch.manual_seed(1)
    if kind == "image":
        clip, n, token = torch.rand(1, 3, 64, 96), 6, IMG  # 2 x 3 merged tokens
        media = {"pixel_values": [clip[0]]}
    else:
        clip, n, token = torch.rand(4, 3, 64, 64), 8, VID  # 2 temporal grids of 2 x 2
        times = torch.tensor([0, 0.5, 1, 1.5])
        media = {"video_pixels": clip, "video_frames": torch.tensor([4]), "video_timestamps": times}
    ids = _ids([5, 6, 7, VS], [token] * n, [VE, 8, 9, 10])
    with torch.no_grad():
        ours = decoder(decoder.embed_tokens(ids), input_ids=ids, token_ids=TOKENS, **media)
        rows, grid = decoder.patchify(clip)
        grids = {kind: torch.tensor([grid])}
        positions, _ = decoder.rope_ids(ids, TOKENS, grids, media.get("video_timestamps"), media.get("video_frames"))
        pictures = {"pixel_values": rows, "image_grid_thw": grids[kind]} if kind == "image" else {
            "pixel_values_videos": rows, "video_grid_thw": grids[kind]}
        ref = decoder.model(input_ids=ids, position_ids=positions, **pictures).logits
    assert (ours - ref).abs().max() <= 1e-5
    if kind == "video":  # TM-RoPE: grids 1 s apart at 25 ids/s; the text after resumes at max + 1
        assert positions[0, 0, 4:12].tolist() == [4] * 4 + [29] * 4 and positions[0, 0, 12].item() == 30


def test_tm_rope_from_tokens_image_video_audio(decoder):
    # text, an image (1 x 2 x 2 merged), a video of 2 grids at 0 s and 0.5 s, then its audio track (3 tokens).
    ids = _ids([5, VS], [IMG] * 4, [VE, VS], [VID] * 2, [VE, AS], [AUD] * 3, [AE, 9])
    grids = {"image": torch.tensor([[1, 4, 4]]), "video": torch.tensor([[2, 2, 2]])}
    pos, nxt = decoder.rope_ids(ids, TOKENS, grids, torch.tensor([0.0, 0.25, 0.5, 0.75]), torch.tensor([4]))
    t = [0, 1, 2, 2, 2, 2, 4, 5, 6, 18, 19, 20, 21, 22, 23, 24, 25]
    h = [0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 19, 20, 21, 22, 23, 24, 25]
    w = [0, 1, 2, 3, 2, 3, 4, 5, 6, 6, 19, 20, 21, 22, 23, 24, 25]
    assert pos[:, 0].tolist() == [t, h, w] and nxt.tolist() == [26]


def test_a_run_that_does_not_match_its_grid_is_an_error(decoder):
    ids = _ids([VS], [IMG] * 3, [VE])
    with pytest.raises(ValueError, match="3 image placeholders"):
        decoder.rope_ids(ids, TOKENS, {"image": torch.tensor([[1, 4, 4]])})


@pytest.fixture(scope="module")
def valley3():
    from valley3.models.audio import AuTEncoder

    torch.manual_seed(0)
    model = OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", min_pixels=32 * 32 * 4), audio=AuTEncoder("tiny-aut"))
    return model.eval()


def test_components_split_vision_and_language(valley3):
    parts = valley3.components()
    assert sorted(parts) == ["audio", "audio_connector", "decoder", "vision"]

    def ids(module):
        return {id(p) for p in module.parameters()}

    assert not ids(parts["vision"]) & ids(parts["decoder"])
    assert sum(len(ids(m)) for m in parts.values()) == len(ids(valley3))


@pytest.fixture(scope="module")
def examples(valley3, media, tmp_path_factory):
    from valley3.data.processor import VideoSpec
    from valley3.data.schema import MediaRef, Sample, Turn
    from valley3.stages.base import build_processor

    video = _write_video(tmp_path_factory.mktemp("v") / "clip.mp4")
    processor = build_processor(valley3, video=VideoSpec(num_frames=3, audio=False))

    def sample(i, kind, path):
        turns = [Turn("user", f"<{kind}>what is it?"), Turn("assistant", "a thing")]
        return Sample(id=f"s{i}", turns=turns, media=[MediaRef(kind, path)], source="test")

    items = [sample(0, "image", media["red"]), sample(1, "video", video), sample(2, "audio", media["tone"])]
    return processor, [processor(s) for s in items]


def _write_video(path, n=6, fps=4):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            frame = np.full((48, 64, 3), 20 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


def test_processor_layout_and_counts(valley3, examples):
    processor, (image, video, audio) = examples
    ids = processor.token_ids
    # red.png is 48 wide, 40 high: below min_pixels (4096), smart resize scales by sqrt(4096 / 1920) and rounds
    # each side up to a multiple of 32 -> 64 x 96 -> 2 x 3 merged tokens.
    assert image.pixel_values[0].shape == (3, 64, 96) and int((image.input_ids == ids["image"]).sum()) == 6
    # 3 frames -> 2 temporal grids (the last frame paired with itself) of 2 x 2.
    assert video.video_pixels[0].shape[0] == 3 and int((video.input_ids == ids["video"]).sum()) == 8
    # tone.wav: 1.3 s -> 130 mel frames -> 13 + 4 AuT tokens (the release's length formula).
    assert audio.audio_features[0].shape[-1] == 130 and int((audio.input_ids == ids["audio"]).sum()) == 17


@pytest.mark.parametrize("backend", ["sdpa", "eager", "sdpa_varlen"])
def test_packed_equals_unpacked(valley3, examples, backend):
    from valley3.data.collate import PadCollator
    from valley3.data.packing import PackingCollator

    processor, items = examples
    if backend != "sdpa":
        from valley3.models.audio import AuTEncoder

        model = OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", attn_implementation=backend), audio=AuTEncoder("tiny-aut"))
        model.bind_tokenizer(valley3.token_ids, valley3.decoder.vocab_size)
        model.load_state_dict(valley3.state_dict())
        valley3 = model.eval()
    with torch.no_grad():
        packed = PackingCollator(processor.pad_id)([items])
        logits = forward(valley3, packed).flatten(0, 1)
        start = 0
        for ex in items:
            single = PadCollator(processor.pad_id)([ex])
            alone = forward(valley3, single)[0]
            assert (logits[start : start + len(ex)] - alone).abs().max() <= 1e-5
            start += len(ex)


def test_one_training_step_and_generation(valley3, examples):
    from valley3.data.collate import PadCollator
    from valley3.stages import OmniStage

    processor, items = examples
    stage = OmniStage(valley3, lr={"audio": 0, "vision": 0, "decoder": 0})
    batch = PadCollator(processor.pad_id)(items)
    stage.train()
    loss, count = stage.model_step(batch)
    loss.backward()
    assert torch.isfinite(loss) and count > 0
    trained = [p for p in valley3.audio_connector.parameters()]
    assert all(p.grad is not None for p in trained)
    assert all(p.grad is None for p in valley3.components()["vision"].parameters())
    valley3.zero_grad(set_to_none=True)
    valley3.eval()
    left = PadCollator(processor.pad_id, padding_side="left")(items)
    out = stage.model.generate(left.input_ids, left.attention_mask, max_new_tokens=3, media=left.media,
                               sample_ids=left.sample_ids)
    assert out.shape == (3, 3)


def test_a_batch_without_pictures_still_gives_the_trainable_vit_a_zero_gradient(valley3, examples):
    from valley3.data.collate import PadCollator

    processor, (_, _, audio) = examples
    batch = PadCollator(processor.pad_id)([audio])
    vit = valley3.components()["vision"]
    vit.requires_grad_(True)  # an earlier test's stage froze it
    valley3.train()
    try:
        logits = valley3(batch.input_ids, batch.attention_mask, media=batch.media)  # audio only
        logits.sum().backward()
        grads = [p.grad for p in vit.parameters()]
        assert all(g is not None and not g.any() for g in grads)
    finally:
        vit.requires_grad_(False)
        valley3.zero_grad(set_to_none=True)
        valley3.eval()


def test_cached_generation_equals_greedy_full_forwards(valley3, examples, media):
    """Left-padded batch, KV cache, TM-RoPE continued from each prompt's next id: every step's logits equal those
    of re-running the whole sequence (logits, not only argmax: a tiny random model's argmax hides position errors)."""
    from dataclasses import replace

    from valley3.data.collate import PadCollator
    from valley3.data.schema import MediaRef, Sample, Turn

    processor, _ = examples
    prompts = [processor(Sample("g0", [Turn("user", "<image>colour?")], [MediaRef("image", media["blue"])]), True),
               processor(Sample("g1", [Turn("user", "a longer text-only prompt here")]), True)]
    batch = PadCollator(processor.pad_id, padding_side="left")(prompts)
    steps: list[torch.Tensor] = []
    hook = valley3.decoder.model.lm_head.register_forward_hook(lambda m, i, o: steps.append(o))
    try:
        out = valley3.generate(batch.input_ids, batch.attention_mask, max_new_tokens=3, media=batch.media,
                               sample_ids=batch.sample_ids)
    finally:
        hook.remove()
    for row, prompt in enumerate(prompts):
        ids = prompt.input_ids
        for step in range(3):
            single = PadCollator(processor.pad_id)([replace(prompt, input_ids=ids, labels=ids)])
            with torch.no_grad():
                logits = valley3(single.input_ids, single.attention_mask, media=single.media,
                                 sample_ids=single.sample_ids)
            assert (logits[0, -1] - steps[step][row]).abs().max() <= 1e-4
            ids = torch.cat([ids, out[row, step : step + 1]])


def test_sampled_generation_follows_the_seed_and_top_k_1_is_greedy(valley3, examples):
    """Rejection sampling (S3) draws k answers per prompt from this decoder."""
    from valley3.data.collate import PadCollator

    processor, items = examples
    valley3.eval()
    left = PadCollator(processor.pad_id, padding_side="left")(items)

    def run(seed, **kwargs):
        torch.manual_seed(seed)
        return valley3.generate(left.input_ids, left.attention_mask, max_new_tokens=6, media=left.media,
                                sample_ids=left.sample_ids, **kwargs)

    greedy = run(0)
    assert torch.equal(run(0, do_sample=True, top_k=1), greedy)
    assert torch.equal(run(1, do_sample=True, temperature=2.0), run(1, do_sample=True, temperature=2.0))
    draws = {tuple(run(seed, do_sample=True, temperature=2.0).flatten().tolist()) for seed in range(4)}
    assert len(draws) > 1


def test_a_second_vision_tower_beside_qwen3_vl_is_a_config_error():
    from valley3.models import OmniModel
    from valley3.models.decoders import Qwen3VLDecoder
    from valley3.models.vision import SigLIPEncoder

    with pytest.raises(ValueError, match="carries its own vision tower"):
        OmniModel(Qwen3VLDecoder("tiny-qwen3-vl"), vision=SigLIPEncoder("tiny-siglip"))


def test_images_and_videos_share_one_vit_pass(valley3, examples):
    """FSDP pairs all-gathers by call order: a rank holding images and videos must call the ViT as often as a rank
    holding only one kind (once), or the ranks hang."""
    from valley3.data.collate import PadCollator

    processor, (image, video, _) = examples
    calls = []
    hook = valley3.decoder.model.model.visual.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            forward(valley3, PadCollator(processor.pad_id)([image, video]))
    finally:
        hook.remove()
    assert len(calls) == 1


def test_a_picture_placeholder_mismatch_names_the_sample(valley3, examples):
    from valley3.data.collate import PadCollator
    from valley3.models.omni import PlaceholderMismatch

    processor, (image, video, _) = examples
    batch = PadCollator(processor.pad_id)([image, video])
    ids = batch.input_ids.clone()
    row = 1  # the video sample: turn one of its video placeholders into text
    ids[row, (ids[row] == valley3.token_ids["video"]).nonzero()[0]] = processor.pad_id + 1
    with pytest.raises(PlaceholderMismatch, match=f"video .*{batch.sample_ids[row]}: "):
        with torch.no_grad():
            valley3(ids, batch.attention_mask, batch.position_ids, batch.cu_seqlens, batch.media, batch.sample_ids)
