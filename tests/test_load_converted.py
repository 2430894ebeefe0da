"""``miniclip.load`` and the CLI on converted OpenAI checkpoints (ViT and ResNet), without downloads.

A small model with the original's key layout stands in for a released checkpoint: its state dict,
cast to float16 as OpenAI publishes them, is written as ``miniclip convert`` writes it (directly,
or through ``torch.save`` + ``convert_checkpoint`` when torch is installed). The vocabulary test reads
the original ``bpe_simple_vocab_16e6.txt.gz`` from ../shared/data and is skipped without it.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import miniclip
from miniclip.api import MissingVocabularyError
from miniclip.cli import main
from miniclip.model import CLIP, ModifiedResNet, VisionTransformer, save_npz
from miniclip.model.convert import TOKENIZER_KEY
from miniclip.tokenizer import BPETokenizer

CLIP_VOCAB = Path(__file__).resolve().parents[2] / "shared/data/bpe_simple_vocab_16e6.txt.gz"
CAPTIONS = ["a red circle", "a blue square", "a green star", "a photo of a small red circle on the left"]

RN = dict(embed_dim=16, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=4, vision_patch_size=None,
          transformer_width=32, transformer_heads=2, transformer_layers=1)
VIT = dict(embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=16,
           transformer_width=64, transformer_heads=1, transformer_layers=1)


def openai_state_dict(kind, vocab_size, context_length=77):
    """A model's state dict in float16, as the released checkpoints store their weights."""
    model = CLIP(**(RN if kind == "rn" else VIT), context_length=context_length, vocab_size=vocab_size, seed=1)
    return {k: (v.astype(np.float16) if v.dtype.kind == "f" else v) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def small_tokenizer():
    return BPETokenizer.train(CAPTIONS, vocab_size=560)


@pytest.mark.parametrize("kind", ["rn", "vit"])
def test_load_returns_model_preprocess_and_tokenizer(tmp_path, small_tokenizer, kind):
    sd = openai_state_dict(kind, small_tokenizer.vocab_size)
    path = save_npz({**sd, TOKENIZER_KEY: np.array(small_tokenizer.merges_text())}, tmp_path / f"{kind}.npz")
    model, preprocess, tokenizer = miniclip.load(path)
    assert isinstance(model.visual, ModifiedResNet if kind == "rn" else VisionTransformer)
    assert model.dtype == np.float32 and not model.training
    R = model.image_resolution
    image = preprocess(np.full((50, 70, 3), 200, dtype=np.uint8))
    assert image.shape == (3, R, R) and image.dtype == np.float32
    tokens = tokenizer(CAPTIONS[:2])
    assert tokens.shape == (2, 77) and tokens[0, 0] == small_tokenizer.sot_token
    logits, _ = model(image[None], tokens)
    assert logits.shape == (1, 2) and np.all(np.isfinite(logits.data))
    # what load built is what the state dict says, weights included
    for k, v in sd.items():
        np.testing.assert_array_equal(model.state_dict()[k], v.astype(model.state_dict()[k].dtype), err_msg=k)


def test_without_a_vocabulary_the_tokenizer_explains_itself(tmp_path):
    path = save_npz(openai_state_dict("rn", 49408), tmp_path / "RN.npz")
    model, preprocess, tokenizer = miniclip.load(path)
    features = model.encode_image(preprocess(np.zeros((64, 64, 3), dtype=np.uint8))[None])  # images need no text
    assert features.shape == (1, 16)
    for use in (lambda: tokenizer(["a dog"]), lambda: tokenizer.encode("a dog")):
        with pytest.raises(MissingVocabularyError, match=r"RN.npz holds no tokenizer vocabulary.*--vocab"):
            use()


def test_zeroshot_and_eval_commands_on_a_converted_file(tmp_path, small_tokenizer, capsys):
    sd = openai_state_dict("rn", small_tokenizer.vocab_size)
    path = save_npz({**sd, TOKENIZER_KEY: np.array(small_tokenizer.merges_text())}, tmp_path / "rn.npz")
    Image.fromarray(np.full((40, 40, 3), (220, 30, 30), dtype=np.uint8)).save(tmp_path / "red.png")
    assert main(["zeroshot", str(path), str(tmp_path / "red.png"), "--labels", "red circle,blue square"]) == 0
    out = capsys.readouterr().out
    assert "red.png" in out and "red circle" in out
    assert main(["eval", str(path), "--images", "8", "--heldout-images", "8"]) == 0
    assert "zero-shot" in capsys.readouterr().out
    bare = save_npz(sd, tmp_path / "bare.npz")
    assert main(["zeroshot", str(bare), str(tmp_path / "red.png"), "--labels", "red,blue"]) == 1
    assert "--vocab" in capsys.readouterr().err


# ------------------------------------------------------------------------ with torch: the convert step
def _save_pt(torch, tmp_path, kind, vocab_size):
    sd = {k: torch.from_numpy(np.array(v)) for k, v in openai_state_dict(kind, vocab_size).items()}
    torch.save(sd, tmp_path / f"{kind}.pt")
    return tmp_path / f"{kind}.pt"


def test_convert_keeps_fp16_as_float32_unless_told(tmp_path):
    torch = pytest.importorskip("torch")
    pt = _save_pt(torch, tmp_path, "rn", 560)
    assert main(["convert", str(pt), str(tmp_path / "a.npz")]) == 0
    assert main(["convert", str(pt), str(tmp_path / "b.npz"), "--dtype", "float16"]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a["visual.conv1.weight"].dtype == np.float32 and b["visual.conv1.weight"].dtype == np.float16
    assert a["visual.bn1.num_batches_tracked"].dtype == np.int64
    assert TOKENIZER_KEY not in a.files
    np.testing.assert_array_equal(a["visual.conv1.weight"], b["visual.conv1.weight"].astype(np.float32))
    assert main(["convert", str(pt), str(tmp_path / "c.npz"), "--vocab", str(tmp_path / "nowhere.txt.gz")]) == 1


def test_convert_with_the_original_vocabulary(tmp_path):
    torch = pytest.importorskip("torch")
    if not CLIP_VOCAB.is_file():
        pytest.skip(f"original CLIP vocabulary not present at {CLIP_VOCAB}")
    pt = _save_pt(torch, tmp_path, "vit", 49408)
    assert main(["convert", str(pt), str(tmp_path / "vit.npz"), "--vocab", str(CLIP_VOCAB)]) == 0
    model, _, tokenizer = miniclip.load(tmp_path / "vit.npz")
    tokens = tokenizer(["a diagram", "a photo of a dog."])
    assert tokens.shape == (2, 77)
    assert tokens[0, :4].tolist() == [49406, 320, 22697, 49407]               # the original ids
    assert tokens[1, :8].tolist() == [49406, 320, 1125, 539, 320, 1929, 269, 49407]
    assert model(np.zeros((1, 3, 32, 32), dtype=np.float32), tokens)[0].shape == (1, 2)
