"""AdamW with decoupled weight decay, global-norm clipping, and the warmup-cosine schedule.

The recipe CLIP was trained with (Radford et al. 2021, section 2.5 and appendix F; open_clip's
``main.py`` / ``scheduler.py``):

- AdamW (Loshchilov & Hutter): Adam's moment estimates plus weight decay applied directly to the
  weights, *not* added to the gradient (so the decay is not rescaled by Adam's 1/sqrt(v)).
- betas (0.9, 0.98) and eps 1e-6 (the paper's values for stability with large batches), weight decay 0.2.
- No decay on gains and biases (every 1-d parameter), on ``logit_scale`` / ``logit_bias`` (the
  temperature must be free to grow), nor on the class and positional embeddings.
- Learning rate: linear warmup, then a cosine decay to 0.
- ``logit_scale`` clamped to [0, ln 100] after every step (the temperature never exceeds 100).

Shape legend: every array here has the shape of its parameter; ``m`` and ``v`` are the first and
second moment estimates (PyTorch's ``exp_avg`` / ``exp_avg_sq``). The update itself is the kernel
``K.adamw_step``; its formula is written out in ``backend/reference.py`` (``adamw_step``).
"""

import math

import numpy as np

from ..backend import K

LOGIT_SCALE_MAX = math.log(100.0)

# Parameters never decayed, by (the last part of) their name, whatever their shape.
NO_DECAY_NAMES = ("logit_scale", "logit_bias", "class_embedding", "positional_embedding")


# ------------------------------------------------------------------ parameter groups
def wants_weight_decay(name, array):
    """True for weight matrices; False for gains, biases, the temperature and the embeddings
    listed in ``NO_DECAY_NAMES`` (CLIP's exclusions; decaying a gain pulls it toward 0, not 1)."""
    return array.ndim >= 2 and name.rsplit(".", 1)[-1] not in NO_DECAY_NAMES


def _as_named_list(named_params, who):
    named = list(named_params.items() if isinstance(named_params, dict) else named_params)
    for item in named:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"{who}: expected (name, parameter) pairs such as model.named_parameters(), "
                            f"got an item {item!r:.80}")
        if not hasattr(item[1], "data") or not isinstance(item[1].data, np.ndarray):
            raise TypeError(f"{who}: parameter {item[0]!r} has no ndarray .data (got {type(item[1]).__name__})")
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"{who}: parameter names must be unique, got duplicates "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    return named


# ------------------------------------------------------------------------- optimizer
def _checked_grad(name, p):
    """``p.grad`` as an array, after checking it has the parameter's shape and dtype."""
    grad = np.asarray(p.grad)
    if grad.shape != p.data.shape or grad.dtype != p.data.dtype:
        raise ValueError(f"AdamW.step: gradient of {name!r} has shape {grad.shape} dtype {grad.dtype}, "
                         f"expected {p.data.shape} {p.data.dtype}")
    return grad


# Parameters of at least this many values are updated by a compiled call of their own, reading
# their gradient where it is; smaller ones are gathered into one buffer and updated together.
OWN_CALL_SIZE = 1 << 16


class _FlatGroup:
    """One parameter group's arrays laid end to end, so that a step is a few compiled passes.

    ``p``, ``m``, ``v`` are flat (total,) buffers; ``views[i]`` is parameter i's slice of ``p``
    in its shape, and after ``adopt`` the parameter's ``.data`` *is* that view (so the update
    written into ``p`` is the model's new weights, with no copy back). The moments ``m``, ``v``
    are likewise viewed per parameter by the optimizer's ``exp_avg`` dicts.

    The many small parameters (gains, biases, small matrices) are one contiguous run of each
    buffer (``p[:small_total]``), and their gradients are gathered into ``g`` for one compiled
    pass: per-call overhead would otherwise dominate. Large parameters (``OWN_CALL_SIZE`` values
    or more) come after them and get a call each on their own gradient array: a copy of it would
    cost time, and memory the size of the model (PyTorch's AdamW holds no such buffer either).
    """

    def __init__(self, params):
        small = [(n, p) for n, p in params if p.data.size < OWN_CALL_SIZE]
        self.params = small + [(n, p) for n, p in params if p.data.size >= OWN_CALL_SIZE]  # small first
        self.n_small = len(small)
        dtype = params[0][1].data.dtype
        sizes = [p.data.size for _, p in self.params]
        self.offsets = np.cumsum([0] + sizes)                 # parameter i is [offsets[i], offsets[i+1])
        total, small_total = int(self.offsets[-1]), int(self.offsets[self.n_small])
        self.p, self.m, self.v = (np.zeros(total, dtype) for _ in range(3))
        self.g = np.zeros(small_total, dtype)                 # the small parameters' gradients
        self.views = [self.p[a:b].reshape(p.data.shape)       # (size,) -> the parameter's shape
                      for (_, p), a, b in zip(self.params, self.offsets[:-1], self.offsets[1:])]
        for i in range(len(self.params)):
            self.adopt(i)

    def adopt(self, i):
        """Copy parameter i's current values into the buffer and make its ``.data`` the view."""
        p, view = self.params[i][1], self.views[i]
        view[...] = p.data
        p.data = view

    def segment(self, buf, i):
        """Parameter i's slice of a flat buffer, in the parameter's shape."""
        return buf[self.offsets[i]:self.offsets[i + 1]].reshape(self.views[i].shape)

    def gather_grads(self):
        """Copy the small parameters' gradients into ``g``; False (nothing copied for sure) if any
        parameter's gradient is missing.

        A parameter whose ``.data`` was replaced by a new array since (``p.data = ...``) is
        adopted again first, so the flat buffer always holds the model's current weights."""
        if any(p.grad is None for _, p in self.params):
            return False
        for i, (name, p) in enumerate(self.params):
            if p.data is not self.views[i]:
                self.adopt(i)
            if i < self.n_small:
                self.segment(self.g, i)[...] = _checked_grad(name, p)
        return True


class AdamW:
    """AdamW over named parameters (objects with ``.data`` and ``.grad`` ndarrays).

    ``AdamW(model.named_parameters(), lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)``

    ``self.lr`` is read at every ``step()``; a schedule sets it (``opt.lr = schedule(step)``).
    ``self.param_groups`` lists the two groups, ``{"names": [...], "weight_decay": wd}``, so a
    reader can check which parameters are decayed. A parameter whose ``.grad`` is None is left
    untouched by a step (as PyTorch does); the step count is one per ``step()`` call.

    Speed: each group's parameters and moments live in flat buffers (``_FlatGroup``), so a step
    is one compiled AdamW pass over a group's small parameters instead of one call per parameter
    (62 for the default model; the per-call overhead was most of the optimizer's time), and one
    call per large parameter, on its gradient where it is. After
    ``AdamW(...)`` every parameter's ``.data`` is a view into its group's buffer; the
    arithmetic is the same, element by element.
    """

    def __init__(self, named_params, lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2):
        for field, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AdamW: {field} must be a finite number >= 0, got {value!r}")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"AdamW: betas must be two numbers in [0, 1), got {betas!r}")
        self.params = _as_named_list(named_params, "AdamW")
        if not self.params:
            raise ValueError("AdamW: got an empty parameter list")
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.step_count = 0
        self.exp_avg = {n: np.zeros_like(p.data) for n, p in self.params}
        self.exp_avg_sq = {n: np.zeros_like(p.data) for n, p in self.params}
        decay = [n for n, p in self.params if wants_weight_decay(n, p.data)]
        no_decay = [n for n, p in self.params if not wants_weight_decay(n, p.data)]
        self.param_groups = [{"names": decay, "weight_decay": self.weight_decay},
                             {"names": no_decay, "weight_decay": 0.0}]
        # flat buffers per group (and dtype): the moments become views into them
        by_name = dict(self.params)
        self._flat = []
        for group in self.param_groups:
            for dtype in sorted({by_name[n].data.dtype.str for n in group["names"]}):
                members = [(n, by_name[n]) for n in group["names"] if by_name[n].data.dtype.str == dtype]
                flat = _FlatGroup(members)
                for i, (n, _) in enumerate(flat.params):          # the flat group's order (small first)
                    self.exp_avg[n], self.exp_avg_sq[n] = flat.segment(flat.m, i), flat.segment(flat.v, i)
                self._flat.append((flat, group["weight_decay"]))

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``): gradients accumulate otherwise."""
        for _, p in self.params:
            p.grad = None

    def step(self):
        """Apply one AdamW update to every parameter that has a gradient."""
        self.step_count += 1
        beta1, beta2 = self.betas
        for flat, weight_decay in self._flat:
            if flat.gather_grads():       # every gradient present: the small ones in one pass
                n = len(flat.g)
                K.adamw_step(flat.p[:n], flat.g, flat.m[:n], flat.v[:n], self.lr, beta1, beta2, self.eps,
                             weight_decay, self.step_count)
                for i in range(flat.n_small, len(flat.params)):                 # the large ones, each
                    name, p = flat.params[i]
                    K.adamw_step(p.data, _checked_grad(name, p), self.exp_avg[name], self.exp_avg_sq[name],
                                 self.lr, beta1, beta2, self.eps, weight_decay, self.step_count)
                continue
            for i, (name, p) in enumerate(flat.params):   # some missing: parameter by parameter
                if p.grad is None:
                    continue
                if p.data is not flat.views[i]:
                    flat.adopt(i)
                K.adamw_step(p.data, _checked_grad(name, p), self.exp_avg[name], self.exp_avg_sq[name], self.lr,
                           beta1, beta2, self.eps, weight_decay, self.step_count)

    # --------------------------------------------------------------------- state
    def state_dict(self):
        """A flat dict of arrays (ready for ``np.savez``): ``step``, ``exp_avg.<name>``,
        ``exp_avg_sq.<name>``. Copies, so later steps do not change a saved state."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for name, _ in self.params:
            state[f"exp_avg.{name}"] = self.exp_avg[name].copy()
            state[f"exp_avg_sq.{name}"] = self.exp_avg_sq[name].copy()
        return state

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output exactly; keys, shapes and dtypes must match."""
        expected = {"step"} | {f"{k}.{n}" for n, _ in self.params for k in ("exp_avg", "exp_avg_sq")}
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(f"AdamW.load_state_dict: missing keys {sorted(missing)[:5]}, "
                           f"unexpected keys {sorted(unexpected)[:5]}")
        for name, p in self.params:
            for key, store in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
                arr = np.asarray(state[f"{key}.{name}"])
                if arr.shape != p.data.shape or arr.dtype != p.data.dtype:
                    raise ValueError(f"AdamW.load_state_dict: {key}.{name} has shape {arr.shape} dtype "
                                     f"{arr.dtype}, expected {p.data.shape} {p.data.dtype}")
                store[name][...] = arr            # in place: the moments are views of flat buffers
        self.step_count = int(state["step"])


def clip_grad_norm(params, max_norm):
    """Scale every gradient by ``min(1, max_norm / (total_norm + 1e-6))``, in place.

    ``total_norm = sqrt(sum over all parameters of ||grad||^2)`` (one global norm, as
    ``torch.nn.utils.clip_grad_norm_``). ``params``: parameters or (name, parameter) pairs.
    Returns the total norm before clipping (a float).
    """
    if not (math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"clip_grad_norm: max_norm must be a finite number > 0, got {max_norm!r}")
    tensors = [p[1] if isinstance(p, tuple) else p for p in params]
    grads = [p.grad for p in tensors if p.grad is not None]
    # accumulate in float64: a float32 sum of squares over millions of entries loses digits
    total = math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel().astype(np.float64)))
                          for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in tensors:
            if p.grad is not None:
                p.grad = p.grad * np.asarray(coef, dtype=p.grad.dtype)
    return total


# -------------------------------------------------------------------------- schedule
class WarmupCosine:
    """Learning rate at optimizer step ``step`` (0-based), open_clip's ``cosine_lr``:

        step <  warmup:  base_lr * (step + 1) / warmup
        step >= warmup:  0.5 * (1 + cos(pi * e / es)) * base_lr,  e = step - warmup, es = total - warmup
    """

    def __init__(self, base_lr, warmup_steps, total_steps):
        if not (math.isfinite(base_lr) and base_lr >= 0):
            raise ValueError(f"WarmupCosine: base_lr must be a finite number >= 0, got {base_lr!r}")
        if not (isinstance(total_steps, int) and total_steps >= 1):
            raise ValueError(f"WarmupCosine: total_steps must be an integer >= 1, got {total_steps!r}")
        if not (isinstance(warmup_steps, int) and 0 <= warmup_steps < total_steps):
            raise ValueError(f"WarmupCosine: warmup_steps must be an integer in [0, total_steps={total_steps}), "
                             f"got {warmup_steps!r}")
        self.base_lr = float(base_lr)
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        e = step - self.warmup_steps
        es = self.total_steps - self.warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * e / es)) * self.base_lr


def clamp_logit_scale(model):
    """Clamp ``model.logit_scale`` to [0, ln 100] in place, so the temperature exp(logit_scale)
    stays in [1, 100].

    open_clip does this after every optimizer step (``logit_scale.clamp_(0, math.log(100))``);
    the paper clips the logit scaling at 100 "to prevent scaling the logits by more than 100";
    the original release (openai/CLIP ``model.py``) has no training code, so it does not appear there.
    """
    scale = model.logit_scale.data
    np.clip(scale, 0.0, LOGIT_SCALE_MAX, out=scale)
