"""Under mpiexec: gradient-check AllGather and the distributed CLIP and SigLIP losses (global and
local), compare them with one process on the concatenated batch, and check all_reduce_gradients.

Usage: mpiexec -n P python gradcheck_allgather.py OUT.json
"""

import sys

import numpy as np
from mpi_helpers import collective_gradcheck, rel_err, write_result

from miniclip import ops
from miniclip.autograd import Tensor
from miniclip.training.distributed import (all_gather, all_reduce_gradients, distributed_clip_loss, distributed_siglip_loss,
                                  init_distributed, rank_slice)
from miniclip.loss import clip_loss, siglip_loss

world = init_distributed(required=True)
with world.abort_on_error():
    P, n, d = world.size, 2, 3
    N = P * n
    result = {"size": P}
    rng = np.random.default_rng(0)  # the same global draw on every rank; each keeps its block

    # 1. AllGather alone: J = sum_q <Y_q, g_q>, so dJ/dx_r = sum_q g_q[block r].
    x = Tensor(rng.standard_normal((N, d))[rank_slice(N, world)].copy(), requires_grad=True)
    result["allgather_gradcheck"] = collective_gradcheck(lambda t: all_gather(t, world), [x], world)
    gathered = all_gather(x, world).data
    assert np.array_equal(gathered[rank_slice(N, world)], x.data), "the gather must keep rank order"

    # 2. Both loss variants: gradcheck w.r.t. this rank's features and its copy of logit_scale.
    image_all = ops.normalize(Tensor(rng.standard_normal((N, d))), -1).data  # (N, d) unit rows
    text_all = ops.normalize(Tensor(rng.standard_normal((N, d))), -1).data
    for kind, local_loss in (("clip", False), ("clip", True), ("siglip", False), ("siglip", True)):
        name = f"{kind}_{'local' if local_loss else 'global'}"
        image = Tensor(image_all[rank_slice(N, world)].copy(), requires_grad=True)  # (n, d)
        text = Tensor(text_all[rank_slice(N, world)].copy(), requires_grad=True)
        scale = Tensor(np.array(np.log(1 / 0.07)), requires_grad=True)
        bias = Tensor(np.array(-1.5), requires_grad=True)
        inputs = [image, text, scale] + ([bias] if kind == "siglip" else [])

        def loss(i, t, s, b=None, kind=kind, local_loss=local_loss):
            if kind == "clip":
                return distributed_clip_loss(i, t, s, world, local_loss=local_loss)
            return distributed_siglip_loss(i, t, s, b, world, local_loss=local_loss)

        result[f"loss_{name}_gradcheck"] = collective_gradcheck(loss, inputs, world)

        # 3. Against one process on the concatenated batch: loss, feature, temperature (and bias) gradients.
        for t in inputs:
            t.grad = None  # the gradcheck left its own gradients there
        mine = loss(*inputs)
        mine.backward()
        I = Tensor(image_all, requires_grad=True)
        T = Tensor(text_all, requires_grad=True)
        S = Tensor(np.array(np.log(1 / 0.07)), requires_grad=True)
        B = Tensor(np.array(-1.5), requires_grad=True)
        logits = S.exp() * (I @ T.T)
        single = clip_loss(logits, logits.T) if kind == "clip" else siglip_loss(logits + B)
        single.backward()
        errors = [
            rel_err(world.mean(mine.item()), single.item()),
            # J = sum_q L_q = P L, so this rank's feature gradient is P dL/dx_r
            rel_err(world.allgather(image.grad / P), I.grad),
            rel_err(world.allgather(text.grad / P), T.grad),
            rel_err(world.allreduce(scale.grad, average=True), S.grad),
        ]
        if kind == "siglip":
            errors.append(rel_err(world.allreduce(bias.grad, average=True), B.grad))
        result[f"loss_{name}_vs_single"] = max(errors)

    # 4. all_reduce_gradients: a gradient on some ranks only counts as zeros elsewhere; none anywhere stays None
    a, b, c = (Tensor(np.zeros(3), requires_grad=True) for _ in range(3))
    a.grad = np.full(3, float(world.rank + 1))
    b.grad = np.ones(3) if world.rank == 0 else None
    all_reduce_gradients([a, b, c], world)
    assert np.array_equal(a.grad, np.full(3, (P + 1) / 2)), a.grad      # mean of 1 .. P
    assert np.array_equal(b.grad, np.full(3, 1 / P)) and c.grad is None, (b.grad, c.grad)

    for key, value in result.items():
        if key.endswith("gradcheck"):
            assert value < 1e-6, f"{key}: relative error {value:.3g}"
        elif key.endswith("vs_single"):
            assert value < 1e-12, f"{key}: relative error {value:.3g}"
    write_result(world, sys.argv[1], result)
