"""The ``miniclip gradcheck`` command: gradient-check every op (and layer) and print a table.

Each ``Case`` names an op, builds float64 inputs of fixed shapes from a seeded
generator (kept away from kinks: positive inputs for log and sqrt, distinct
values for max), and calls ``miniclip.gradcheck`` on it. The tests check the
same ops on Hypothesis-drawn shapes and layouts (``tests/test_ops_gradcheck.py``);
this table is the proof a learner can run in a few seconds.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import ops
from ..autograd import Tensor, gradcheck


@dataclass
class Case:
    """One gradient check: ``fn(*inputs)`` with inputs of ``shapes`` drawn from ``domain``."""

    name: str
    fn: Callable
    shapes: tuple
    domain: str = "real"      # "real": N(0, 1); "positive": U(0.5, 2)
    group: str = "op"         # "op", "layer" or "model"
    max_checks: int = None    # entries perturbed per input (None: all)

    def inputs(self, rng):
        if self.domain == "positive":
            return [Tensor(rng.uniform(0.5, 2.0, s), requires_grad=True) for s in self.shapes]
        return [Tensor(rng.standard_normal(s), requires_grad=True) for s in self.shapes]


def _targets(n, c):
    return np.arange(n) % c


OP_CASES = [
    Case("add", lambda a, b: a + b, ((3, 4), (4,))),
    Case("sub", lambda a, b: a - b, ((3, 1), (1, 4))),
    Case("mul", lambda a, b: a * b, ((2, 3, 4), (3, 1))),
    Case("div", lambda a, b: a / b, ((3, 4), (3, 4)), "positive"),
    Case("neg", lambda a: -a, ((3, 4),)),
    Case("pow", lambda a: a ** 2.5, ((3, 4),), "positive"),
    Case("exp", ops.exp, ((3, 4),)),
    Case("log", ops.log, ((3, 4),), "positive"),
    Case("sqrt", ops.sqrt, ((3, 4),), "positive"),
    Case("tanh", ops.tanh, ((3, 4),)),
    Case("sigmoid", ops.sigmoid, ((3, 4),)),
    Case("matmul", ops.matmul, ((2, 3, 4), (4, 5))),
    Case("sum", lambda a: ops.sum(a, axis=(0, 2), keepdims=True), ((2, 3, 4),)),
    Case("mean", lambda a: ops.mean(a, axis=1), ((2, 3, 4),)),
    Case("max", lambda a: ops.max(a, axis=-1), ((3, 5),)),
    Case("reshape", lambda a: ops.reshape(a, (4, -1)), ((2, 3, 4),)),
    Case("transpose", lambda a: ops.transpose(a), ((2, 3, 4),)),
    Case("permute", lambda a: ops.permute(a, (2, 0, 1)), ((2, 3, 4),)),
    Case("getitem", lambda a: a[1:, np.array([0, 2, 2])], ((3, 4),)),
    Case("gather", lambda a: ops.gather(a, 1, np.array([[0], [3], [3]])), ((3, 4),)),
    Case("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), ((2, 3), (2, 2))),
    Case("stack", lambda a, b: ops.stack([a, b], axis=1), ((2, 3), (2, 3))),
    Case("softmax", lambda a: ops.softmax(a, axis=-1), ((3, 5),)),
    Case("log_softmax", lambda a: ops.log_softmax(a, axis=0), ((3, 5),)),
    Case("logsumexp", lambda a: ops.logsumexp(a, axis=-1), ((3, 5),)),
    Case("layer_norm", ops.layer_norm, ((2, 3, 8), (8,), (8,))),
    Case("gelu", ops.gelu, ((3, 4),)),
    Case("quick_gelu", ops.quick_gelu, ((3, 4),)),
    Case("embedding", lambda w: ops.embedding(np.array([[1, 1, 6], [0, 2, 6]]), w), ((7, 4),)),
    Case("cross_entropy", lambda a: ops.cross_entropy(a, _targets(4, 5)), ((4, 5),)),
    Case("normalize", lambda a: ops.normalize(a, axis=-1), ((3, 4),)),
    Case("logsigmoid", ops.logsigmoid, ((3, 4),)),
    Case("narrow", lambda a: ops.narrow(a, 1, 1, 2), ((3, 4),)),
    Case("linear", lambda x, w, b: ops.linear(x, w, b), ((2, 3, 4), (5, 4), (5,))),
    Case("linear + residual", lambda x, w, b, r: ops.linear(x, w, b, residual=r),
         ((2, 3, 4), (5, 4), (5,), (2, 3, 5))),
    Case("qkv_attention", lambda qkv: ops.qkv_attention(qkv, 2), ((2, 5, 12),)),
    Case("qkv_attention (causal)", lambda qkv: ops.qkv_attention(qkv, 2, causal=True), ((2, 5, 12),)),
    Case("qkv_attention_plain", lambda qkv: ops.qkv_attention_plain(qkv, 2), ((2, 5, 12),)),
    Case("qkv_attention_plain (causal)", lambda qkv: ops.qkv_attention_plain(qkv, 2, causal=True), ((2, 5, 12),)),
    Case("attention", lambda q, k, v: ops.scaled_dot_product_attention(q, k, v),
         ((2, 2, 5, 4),) * 3),
    Case("attention (causal)", lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, causal=True),
         ((2, 2, 5, 4),) * 3),
    Case("conv2d (3x3, stride 2, pad 1)", lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
         ((2, 3, 5, 6), (4, 3, 3, 3))),
    Case("conv2d (1x1)", ops.conv2d, ((2, 3, 4, 3), (5, 3, 1, 1))),
    # fresh running statistics per call: training mode updates them in place
    Case("batch_norm2d (training)", lambda x, w, b: ops.batch_norm2d(x, w, b, np.zeros(3), np.ones(3), True),
         ((2, 3, 4, 3), (3,), (3,))),
    Case("batch_norm2d (eval)", lambda x, w, b: ops.batch_norm2d(x, w, b, np.full(3, 0.3), np.full(3, 1.7), False),
         ((2, 3, 4, 3), (3,), (3,))),
    Case("avg_pool2d", lambda x: ops.avg_pool2d(x, 2), ((2, 3, 5, 4),)),
    Case("relu", ops.relu, ((3, 4),)),
]


def run(cases, seed=0, rtol=1e-6, atol=1e-8, stream=print):
    """Check every case; print a table; return the number of failures. ``miniclip gradcheck`` runs
    ``model_gradcheck_cases.all_cases()``: these op cases, then the layers' and the model's."""
    stream(f"{'op':<30} {'input shapes':<30} {'dtype':<8} {'max rel err':>12}  result")
    stream("-" * 90)
    failures = 0
    for i, case in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        inputs = case.inputs(rng)
        # the upstream gradient gets its own stream (an upstream equal to the input can make
        # a true gradient exactly zero, as for normalize, and hide the op from the check)
        worst, message = gradcheck(case.fn, *inputs, rtol=rtol, atol=atol, seed=10_000 + seed + i,
                                   name=case.name, max_checks=case.max_checks, raise_on_failure=False)
        ok = message is None
        failures += not ok
        shapes = ", ".join("x".join(map(str, s)) for s in case.shapes)
        if case.group != "op":
            shapes = (shapes + " + params" if shapes else "params")[:30]
        stream(f"{case.name:<30} {shapes:<30} {'float64':<8} {worst:>12.2e}  {'pass' if ok else 'FAIL'}")
        if not ok:
            stream(f"    {message}")
    stream("-" * 90)
    stream(f"{len(cases) - failures} passed, {failures} failed (rtol {rtol:g}, atol {atol:g}, "
           f"central differences, eps 1e-6, float64, random upstream gradient)")
    return failures
