"""AdamW, gradient clipping, warmup-cosine and the temperature clamp.

Checked against a hand computation of the AdamW formulas, against torch.optim.AdamW
(float64, when torch is installed), and for exact state save/restore.
"""

import math

import numpy as np
import pytest

from miniclip.autograd import Tensor
from miniclip.backend import K, reference
from miniclip.training.optim import LOGIT_SCALE_MAX, AdamW, WarmupCosine, clamp_logit_scale, clip_grad_norm, wants_weight_decay


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"visual.proj": (4, 3), "visual.ln_pre.weight": (4,), "visual.ln_pre.bias": (4,),
              "visual.class_embedding": (4,), "visual.positional_embedding": (5, 4),
              "positional_embedding": (6, 4), "token_embedding.weight": (10, 4), "logit_scale": ()}
    return [(n, Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)) for n, s in shapes.items()]


def set_grads(params, rng):
    for _, p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)


def test_parameter_groups_follow_clip():
    opt = AdamW(make_params(), lr=1e-3)
    decayed, not_decayed = opt.param_groups[0]["names"], opt.param_groups[1]["names"]
    assert sorted(decayed) == ["token_embedding.weight", "visual.proj"]
    assert set(not_decayed) == {"visual.ln_pre.weight", "visual.ln_pre.bias", "visual.class_embedding",
                                "visual.positional_embedding", "positional_embedding", "logit_scale"}
    assert not wants_weight_decay("logit_bias", np.zeros((1, 1)))


def test_adamw_step_matches_hand_computation():
    # two steps of AdamW on a single scalar, written out by hand
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.98, 1e-6, 0.2
    p, m, v = np.array([1.0]), np.zeros(1), np.zeros(1)
    x = 1.0
    for step, g in ((1, 0.5), (2, -0.25)):
        reference.adamw_step(p, np.array([g]), m, v, lr, b1, b2, eps, wd, step)
        x = x * (1 - lr * wd)
        m_hand = 0.5 * (1 - b1) if step == 1 else b1 * 0.5 * (1 - b1) + (1 - b1) * g
        v_hand = 0.25 * (1 - b2) if step == 1 else b2 * 0.25 * (1 - b2) + (1 - b2) * g * g
        x = x - lr * (m_hand / (1 - b1 ** step)) / (math.sqrt(v_hand / (1 - b2 ** step)) + eps)
        assert m[0] == pytest.approx(m_hand, rel=1e-15)
        assert v[0] == pytest.approx(v_hand, rel=1e-15)
        assert p[0] == pytest.approx(x, rel=1e-14)
    # the first step of Adam moves every coordinate by about lr (sign of the gradient)
    p1 = np.array([0.0, 0.0]); m1 = np.zeros(2); v1 = np.zeros(2)
    reference.adamw_step(p1, np.array([3.0, -1e-3]), m1, v1, 0.01, b1, b2, 0.0, 0.0, 1)
    np.testing.assert_allclose(p1, [-0.01, 0.01], rtol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_backend_kernel_matches_reference(dtype, rtol):
    rng = np.random.default_rng(1)
    shape = (7, 13)
    args = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]
    m, v = rng.standard_normal(shape).astype(dtype), rng.random(shape).astype(dtype)
    ref = [a.copy() for a in (args[0], m, v)]
    reference.adamw_step(ref[0], args[1], ref[1], ref[2], 1e-2, 0.9, 0.98, 1e-6, 0.2, 3)
    K.adamw_step(args[0], args[1], m, v, 1e-2, 0.9, 0.98, 1e-6, 0.2, 3)
    for got, want in zip((args[0], m, v), ref):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_parameters_updated_on_their_own_give_the_same_bits(dtype, monkeypatch):
    """Parameters of OWN_CALL_SIZE values or more skip the gathered buffer: same weights and moments."""
    import miniclip.training.optim as optim
    runs = {}
    for own_call_size in (10 ** 9, 12):               # everything gathered / the (5, 4) and larger on their own
        monkeypatch.setattr(optim, "OWN_CALL_SIZE", own_call_size)
        params = make_params(dtype)
        opt = AdamW(params, lr=1e-2)
        grads = np.random.default_rng(5)
        for _ in range(3):
            set_grads(params, grads)
            opt.step()
        runs[own_call_size] = (params, opt)
    (gathered, opt_g), (own, opt_o) = runs.values()
    assert any(p.data.size >= 12 for _, p in own)
    for (name, a), (_, b) in zip(gathered, own):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
        np.testing.assert_array_equal(opt_g.exp_avg[name], opt_o.exp_avg[name], err_msg=name)
        np.testing.assert_array_equal(opt_g.exp_avg_sq[name], opt_o.exp_avg_sq[name], err_msg=name)


def test_matches_torch_adamw_float64():
    torch = pytest.importorskip("torch")
    params = make_params(np.float64)
    tparams = [torch.nn.Parameter(torch.tensor(p.data.copy())) for _, p in params]
    opt = AdamW(params, lr=3e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    decay_names = set(opt.param_groups[0]["names"])
    groups = [{"params": [tp for (n, _), tp in zip(params, tparams) if n in decay_names], "weight_decay": 0.2},
              {"params": [tp for (n, _), tp in zip(params, tparams) if n not in decay_names], "weight_decay": 0.0}]
    topt = torch.optim.AdamW(groups, lr=3e-2, betas=(0.9, 0.98), eps=1e-6, foreach=False)
    sched = WarmupCosine(3e-2, warmup_steps=2, total_steps=6)
    rng = np.random.default_rng(2)
    for step in range(6):
        set_grads(params, rng)
        for (_, p), tp in zip(params, tparams):
            tp.grad = torch.tensor(p.grad.copy())
        opt.lr = sched(step)
        for g in topt.param_groups:
            g["lr"] = sched(step)
        opt.step()
        topt.step()
        for (name, p), tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-13, atol=1e-15, err_msg=name)
            st = topt.state[tp]
            np.testing.assert_allclose(opt.exp_avg[name], st["exp_avg"].numpy(), rtol=1e-13, atol=1e-16)
            np.testing.assert_allclose(opt.exp_avg_sq[name], st["exp_avg_sq"].numpy(), rtol=1e-13, atol=1e-16)


def test_state_save_restore_is_exact():
    rng = np.random.default_rng(3)
    params = make_params(np.float32)
    opt = AdamW(params, lr=1e-2)
    for _ in range(3):
        set_grads(params, rng)
        opt.step()
    state = opt.state_dict()
    snapshot = [(n, Tensor(p.data.copy(), requires_grad=True)) for n, p in params]
    grads = [rng.standard_normal(p.data.shape).astype(np.float32) for _, p in params]

    # continue the original for two steps
    for _ in range(2):
        for (_, p), g in zip(params, grads):
            p.grad = g
        opt.step()
    # restore into a fresh optimizer over the snapshot and take the same two steps
    opt2 = AdamW(snapshot, lr=1e-2)
    opt2.load_state_dict(state)
    assert opt2.step_count == 3
    for _ in range(2):
        for (_, p), g in zip(snapshot, grads):
            p.grad = g
        opt2.step()
    for (name, p), (_, q) in zip(params, snapshot):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    # the saved state is a copy: stepping did not change it
    assert int(state["step"]) == 3


def test_load_state_dict_names_the_bad_key():
    opt = AdamW(make_params(), lr=1e-3)
    state = opt.state_dict()
    state["exp_avg.visual.proj"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="exp_avg.visual.proj"):
        opt.load_state_dict(state)
    del state["exp_avg.visual.proj"]
    with pytest.raises(KeyError, match="exp_avg.visual.proj"):
        opt.load_state_dict(state)


def test_zero_grad_and_missing_grads():
    params = make_params()
    opt = AdamW(params, lr=1e-3)
    before = {n: p.data.copy() for n, p in params}
    params[0][1].grad = np.ones_like(params[0][1].data)
    opt.step()
    assert not np.array_equal(params[0][1].data, before[params[0][0]])
    for n, p in params[1:]:
        np.testing.assert_array_equal(p.data, before[n])  # no grad: untouched
    opt.zero_grad()
    assert all(p.grad is None for _, p in params)


def test_flat_buffers_are_the_parameters():
    """After AdamW(...) each .data is a view of its group's flat buffer, and a step updates it
    exactly as the per-parameter update does (the flat pass is the same arithmetic)."""
    params = make_params(np.float32)
    twin = [(n, Tensor(p.data.copy(), requires_grad=True)) for n, p in params]
    opt = AdamW(params, lr=1e-2, weight_decay=0.1)
    for flat, _ in opt._flat:
        for (_, p), view in zip(flat.params, flat.views):
            assert p.data is view and np.shares_memory(p.data, flat.p)
    m = {n: np.zeros_like(p.data) for n, p in twin}
    v = {n: np.zeros_like(p.data) for n, p in twin}
    decay = set(opt.param_groups[0]["names"])
    rng = np.random.default_rng(1)
    for step in range(1, 4):
        set_grads(params, rng)
        for (_, p), (n, q) in zip(params, twin):
            q.grad = p.grad.copy()
        opt.step()
        for n, q in twin:
            K.adamw_step(q.data, q.grad, m[n], v[n], 1e-2, 0.9, 0.98, 1e-6, 0.1 if n in decay else 0.0, step)
        for (n, p), (_, q) in zip(params, twin):
            np.testing.assert_array_equal(p.data, q.data)
            np.testing.assert_array_equal(opt.exp_avg[n], m[n])


def test_replaced_data_is_adopted_at_the_next_step():
    """``p.data = new_array`` after AdamW(...) is not lost: the next step copies it into the flat
    buffer (and the update lands in the parameter the model reads)."""
    params = make_params()
    opt = AdamW(params, lr=0.1, weight_decay=0.0)
    name, p = params[0]
    p.data = np.full(p.data.shape, 3.0)
    set_grads(params, np.random.default_rng(2))
    p.grad = np.zeros_like(p.data)
    opt.step()
    np.testing.assert_array_equal(p.data, 3.0)            # zero gradient: Adam leaves it in place
    assert any(p.data is view for flat, _ in opt._flat for view in flat.views)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lr"):
        AdamW(make_params(), lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        AdamW(make_params(), lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="pairs"):
        AdamW([np.zeros(3)], lr=1e-3)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(1e-3, warmup_steps=10, total_steps=10)


def test_clip_grad_norm_matches_global_norm():
    params = make_params()
    rng = np.random.default_rng(4)
    set_grads(params, rng)
    grads = [p.grad.copy() for _, p in params]
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    got = clip_grad_norm(params, max_norm=total / 2)
    assert got == pytest.approx(total, rel=1e-12)
    new_total = math.sqrt(sum(float(np.sum(p.grad * p.grad)) for _, p in params))
    assert new_total == pytest.approx(total / 2, rel=1e-5)
    for (_, p), g in zip(params, grads):  # direction unchanged
        np.testing.assert_allclose(p.grad * total / new_total, g, rtol=1e-5)
    # under the limit: unchanged
    before = [p.grad.copy() for _, p in params]
    clip_grad_norm([p for _, p in params], max_norm=1e9)
    for (_, p), g in zip(params, before):
        np.testing.assert_array_equal(p.grad, g)


def test_warmup_cosine_values():
    s = WarmupCosine(1.0, warmup_steps=4, total_steps=14)
    assert [s(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4) == 1.0
    assert s(9) == pytest.approx(0.5)
    assert s(14) == pytest.approx(0.0, abs=1e-15)
    assert all(s(i) >= s(i + 1) for i in range(4, 14))
    assert WarmupCosine(2.0, 0, 3)(0) == 2.0


def test_clamp_logit_scale():
    class M:
        logit_scale = Tensor(np.array(5.0, dtype=np.float32), requires_grad=True)
    clamp_logit_scale(M)
    assert M.logit_scale.data == np.float32(LOGIT_SCALE_MAX)
    assert M.logit_scale.data.dtype == np.float32 and M.logit_scale.data.shape == ()
    M.logit_scale.data[...] = -1.0
    clamp_logit_scale(M)
    assert M.logit_scale.data == 0.0
