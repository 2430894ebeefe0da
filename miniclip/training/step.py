"""One training step of CLIP: the whole algorithm of figure 3 of the paper, and its update.

    # image_encoder, text_encoder, W_i, W_t, t: the model (CLIP)
    logits = model(images, tokens)                    # cosine(I_e, T_e) * exp(t), both directions
    loss = clip_loss(logits)                          # (CE over rows + CE over columns) / 2
    dL/dθ for every θ                                 # loss.backward()
    θ <- AdamW(θ, dL/dθ); t <- min(t, ln 100)         # optimizer.step(), clamp_logit_scale

Everything else a run needs -- the schedule, evaluation, checkpoints, Ctrl-C, progress, timing --
lives around it in ``fit.py``. Shape legend: B batch, R resolution, T context length.
"""

import math

import numpy as np

from .distributed import all_reduce_gradients, distributed_model_loss
from ..ops import cross_entropy
from .optim import clamp_logit_scale, clip_grad_norm


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or Inf; the message names the step and the parameter."""


def train_step(model, batch, loss_fn, optimizer, world=None, grad_clip=None, local_loss=False):
    """One optimizer step on ``batch`` (images (B, 3, R, R), tokens (B, T)); returns the loss (a float).

    ``loss_fn(logits_per_image, logits_per_text)``: ``clip_loss`` or ``siglip_loss``. With ``world``
    (data parallel over MPI, ``distributed.py``) ``batch`` is this rank's shard: the ranks gather their
    features so that the loss sees the whole batch, and average their gradients so that all take the
    same step. ``grad_clip``: the largest global gradient norm (None: no clipping).
    """
    if world is None or world.size == 1:
        logits_per_image, logits_per_text = model(batch.images, batch.tokens)  # (B, B) each
        loss = loss_fn(logits_per_image, logits_per_text)
    else:
        loss = distributed_model_loss(model, batch.images, batch.tokens, world, local_loss=local_loss)
    optimizer.zero_grad()
    loss.backward()
    all_reduce_gradients(model.parameters(), world)        # data parallel: the mean over ranks
    loss_value = float(loss.item()) if world is None else world.mean(float(loss.item()))
    check_finite(loss_value, model.named_parameters())     # never let a NaN reach the weights
    if grad_clip is not None:
        clip_grad_norm(model.named_parameters(), grad_clip)
    optimizer.step()                                       # AdamW
    clamp_logit_scale(model)                               # tau = exp(-logit_scale) >= 0.01
    return loss_value


def check_finite(loss_value, named_params):
    """Raise ``NonFiniteError`` naming the loss or the first parameter whose gradient is NaN or Inf."""
    if not math.isfinite(loss_value):
        raise NonFiniteError(f"the loss is {loss_value}; stopping before the update (the last good checkpoint "
                             f"is kept)")
    for name, p in named_params:
        if p.grad is not None and not np.isfinite(p.grad).all():
            bad = p.grad[~np.isfinite(p.grad)]
            raise NonFiniteError(f"the gradient of parameter {name!r} holds {bad.size} non-finite values "
                                 f"(e.g. {bad.flat[0]}); stopping before the update (the last good checkpoint "
                                 f"is kept)")


def supervised_step(model, batch, optimizer, grad_clip=None):
    """The supervised baseline's step (chapter 12): the same image tower and optimizer, the labels
    instead of the captions -- ``cross_entropy(model(images), labels)``, labels (B,) in [0, 48)."""
    loss = cross_entropy(model(batch.images), batch.labels)  # (B, 48) logits against the class labels
    optimizer.zero_grad()
    loss.backward()
    loss_value = float(loss.item())
    check_finite(loss_value, model.named_parameters())
    if grad_clip is not None:
        clip_grad_norm(model.named_parameters(), grad_clip)
    optimizer.step()
    return loss_value
