"""A tiny CLIP memorizes 16 fixed (image, caption) pairs: the whole training path works end to end.

The optimizer is plain Adam written here (miniclip.training.optim is not this test's subject), followed by
the temperature clamp of the training loop: logit_scale in [0, ln 100].
"""

import numpy as np
from clip_tiny import random_images, random_tokens, tiny_clip

from miniclip import no_grad
from miniclip.loss import clip_loss


def adam_step(params, state, lr, step, betas=(0.9, 0.98), eps=1e-8):
    b1, b2 = betas
    for i, p in enumerate(params):
        m, v = state.setdefault(i, (np.zeros_like(p.data), np.zeros_like(p.data)))
        m[...] = b1 * m + (1 - b1) * p.grad
        v[...] = b2 * v + (1 - b2) * p.grad ** 2
        m_hat, v_hat = m / (1 - b1 ** step), v / (1 - b2 ** step)
        p.data -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(p.dtype)


def test_tiny_clip_overfits_16_pairs():
    rng = np.random.default_rng(0)
    model = tiny_clip(dtype=np.float32, seed=0)
    images = random_images(rng, 16, 8, dtype=np.float32)
    tokens = random_tokens(rng, 16, 8, 20, min_len=3)
    assert len({t.tobytes() for t in tokens}) == 16  # 16 different captions
    params, state = model.parameters(), {}
    with no_grad():
        first = clip_loss(*model(images, tokens)).item()
    assert first > 1.0  # chance is ln 16 = 2.77; a random model with scale 14.3 is about there or worse
    losses = []
    for step in range(1, 301):
        loss = clip_loss(*model(images, tokens))
        model.zero_grad()
        loss.backward()
        adam_step(params, state, lr=3e-3, step=step)
        with no_grad():  # the clamp of the training loop (open_clip): exp(logit_scale) <= 100
            np.clip(model.logit_scale.data, 0, np.log(100), out=model.logit_scale.data)
        losses.append(loss.item())
        if losses[-1] < 0.05:
            break
    assert losses[-1] < 0.05, f"loss after {len(losses)} steps: {losses[-1]:.4f} (first {losses[0]:.4f})"
    assert model.logit_scale.item() <= np.log(100) + 1e-6
    with no_grad():
        logits_per_image, _ = model(images, tokens)
    np.testing.assert_array_equal(logits_per_image.data.argmax(axis=1), np.arange(16))  # each image finds its caption
