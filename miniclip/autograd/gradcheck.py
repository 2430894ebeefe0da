"""``gradcheck``: prove a backward pass against central finite differences.

For a function f and a random upstream gradient g (seeded), the analytic
gradient of the scalar  L(x) = <f(x), g>  is what ``backward(g)`` computes. The
numeric one perturbs each input element by +-eps:

    dL/dx_i  ~=  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

Why these choices:
- *central* differences: the error is O(eps^2), not O(eps) as one-sided ones;
- *float64*: with eps = 1e-6 the rounding error of L is ~1e-16 / 1e-6 = 1e-10 of
  L's size; in float32 it would be ~1e-1, and nothing would be proven;
- a *random* g: with f(x).sum() (g = 1) a backward that transposes or
  mis-broadcasts its gradient can still pass, because every entry of g is equal.
"""

import numpy as np

from .function import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """A gradient check failed; the message names the argument, index and both values."""


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-8, rtol=1e-6, seed=0, max_checks=None, name=None,
              raise_on_failure=True):
    """Compare ``fn``'s analytic gradients with central differences, in float64.

    ``fn(*inputs)`` must return a Tensor. Every input Tensor with
    ``requires_grad=True`` is checked; other arguments pass through. Element i
    passes when |analytic - numeric| <= atol + rtol * |numeric|.

    ``max_checks`` limits the number of elements perturbed per input (chosen at
    random, seeded) for large inputs; ``None`` checks every element.

    Returns the largest relative error over the checked inputs, each measured
    normwise: max_i |a_i - n_i| / max(max_i |n_i|, atol / rtol) over the perturbed
    elements. The floor atol / rtol keeps a gradient that is truly ~0 from reporting
    rounding noise as a large relative error; it is the scale below which the pass
    rule's atol dominates its rtol. Raises
    ``GradcheckError`` (an AssertionError) naming the function, the argument, the
    index and both values on the first failing input, unless
    ``raise_on_failure=False``, in which case it returns ``(max_rel_err, message)``.
    """
    name = name or getattr(fn, "__name__", "fn")
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError(f"gradcheck({name}): no input has requires_grad=True")
    for i, x in checked:
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck({name}): argument {i} is {x.dtype}; gradcheck runs in float64 "
                            f"only (float32 rounding would swamp the finite differences)")

    # a stream of its own, so that inputs drawn with default_rng(seed) never equal the upstream
    rng = np.random.default_rng([seed, 0x6772616463686B])
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck({name}): fn must return a Tensor, got {type(out).__name__}")
    upstream = rng.standard_normal(out.shape)

    for _, x in checked:
        x.grad = None
    out.backward(upstream)
    analytic = [np.zeros(x.shape) if x.grad is None else x.grad.copy() for _, x in checked]

    def objective():
        with no_grad():
            return float(np.sum(fn(*inputs).data * upstream))

    worst = 0.0
    for (arg, x), a_grad in zip(checked, analytic):
        data = x.data  # perturbed in place, element by element (any layout, views included)
        if not data.flags.writeable:
            raise ValueError(f"gradcheck({name}): argument {arg} is read-only and cannot be perturbed")
        positions = np.arange(data.size)
        if max_checks is not None and data.size > max_checks:
            positions = np.sort(rng.choice(data.size, size=max_checks, replace=False))
        max_diff = max_numeric = 0.0
        for p in positions:
            index = np.unravel_index(p, x.shape)
            original = data[index]
            data[index] = original + eps
            plus = objective()
            data[index] = original - eps
            minus = objective()
            data[index] = original
            numeric = (plus - minus) / (2 * eps)
            analytic_p = a_grad[index]
            diff = abs(analytic_p - numeric)
            max_diff, max_numeric = max(max_diff, diff), max(max_numeric, abs(numeric))
            if not diff <= atol + rtol * abs(numeric):
                message = (f"gradcheck({name}) failed for argument {arg} (shape {x.shape}) at index "
                           f"{tuple(int(i) for i in index)}: analytic {analytic_p:.10g}, numeric "
                           f"{numeric:.10g}, |diff| {diff:.3g} > atol {atol:g} + rtol {rtol:g} * |numeric|")
                if raise_on_failure:
                    raise GradcheckError(message)
                return max(worst, max_diff / max(max_numeric, atol / rtol)), message
        if max_diff > 0:
            worst = max(worst, max_diff / max(max_numeric, atol / rtol))
    for _, x in checked:
        x.grad = None
    return worst if raise_on_failure else (worst, None)
