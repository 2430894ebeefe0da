"""The supervised baseline (model/supervised.py): CLIP's image tower with a linear head."""

import numpy as np

from miniclip import gradcheck
from miniclip.model import CLIP
from miniclip.model.supervised import SupervisedClassifier
from miniclip.model_gradcheck_cases import TINY, SupervisedLossCase


def test_supervised_loss_gradcheck_wrt_every_parameter():
    case = SupervisedLossCase()
    params = case.inputs(np.random.default_rng(0))
    assert gradcheck(case.fn, *params, max_checks=6, name=case.name) < 1e-6


def test_the_image_tower_is_clips_and_encode_image_gives_its_features():
    model = SupervisedClassifier(7, **TINY, dtype=np.float64, seed=3)
    clip = CLIP(**TINY, dtype=np.float64, seed=3)
    visual_keys = [k for k in clip.state_dict() if k.startswith("visual.")]
    assert [k for k in model.state_dict() if k.startswith("visual.")] == visual_keys
    assert set(model.state_dict()) - set(visual_keys) == {"head.weight", "head.bias"}
    images = np.random.default_rng(1).standard_normal((3, 3, 8, 8))
    features = model.encode_image(images).data
    assert features.shape == (3, TINY["embed_dim"])
    W, b = model.head.weight.data, model.head.bias.data
    np.testing.assert_allclose(model(images).data, features @ W.T + b, rtol=1e-12)
