"""Linear probes: how good are the frozen image features? (Radford et al. 2021, section 3.2, appendix A.3)

A linear probe fits a multinomial logistic regression on the image encoder's features of labeled
images and measures its accuracy on other images. It asks what zero-shot does not: how much of what
the labels say can a *linear* read-out find in the representation? The paper fits it with L-BFGS
(scikit-learn's ``LogisticRegression``) and chooses the L2 strength on a validation split; so do we,
with ``scipy.optimize.minimize(method="L-BFGS-B")`` on the loss and gradient written out below.

The model, for features x (D,) and classes c = 1..L:

    logits = x W + b                        W (D, L), b (L,)
    p      = softmax(logits)
    loss   = mean_i [ logsumexp(logits_i) - logits_i[y_i] ]  +  l2 / 2 * ||W||^2      (b is not penalized)

    dlogits = (p - onehot(y)) / N           (N, L)
    dW      = X^T dlogits + l2 * W          (D, L)
    db      = sum_i dlogits_i               (L,)

Features are standardized with the *training* set's mean and standard deviation per dimension
(``Standardizer``), so one grid of ``l2`` values means the same thing for every model.

The regularization sweep is the paper's "parametric binary search": start from l2 in
10^-6, 10^-5.5, ..., 10^6; then repeatedly halve the step around the best value on the validation
split until it reaches 8 steps per decade (``select_l2``).

Shape legend: N examples, D feature dim, L classes.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


# ------------------------------------------------------------------------ loss and gradient
def logistic_loss_and_grad(theta, X, y, n_classes, l2):
    """Multinomial logistic loss (mean over the N rows) plus ``l2/2 * ||W||^2``, and its gradient.

    ``theta`` is ``concatenate([W.ravel(), b])`` with W (D, L) and b (L,): the flat vector L-BFGS
    works on. ``y`` (N,) holds class indices in [0, L). Returns ``(loss, dtheta)``.
    """
    n, d = X.shape
    W = theta[:d * n_classes].reshape(d, n_classes)                # (D, L)
    b = theta[d * n_classes:]                                       # (L,)
    logits = X @ W + b                                              # (N, L)
    logits -= logits.max(axis=1, keepdims=True)                     # shift: exp never overflows
    e = np.exp(logits)                                              # (N, L)
    z = e.sum(axis=1, keepdims=True)                                # (N, 1)
    rows = np.arange(n)
    loss = np.mean(np.log(z[:, 0]) - logits[rows, y]) + 0.5 * l2 * np.sum(W * W)
    dlogits = e / (z * n)                                           # p / N, (N, L)
    dlogits[rows, y] -= 1.0 / n                                     # (p - onehot(y)) / N
    dW = X.T @ dlogits + l2 * W                                     # (D, L)
    db = dlogits.sum(axis=0)                                        # (L,)
    return loss, np.concatenate([dW.ravel(), db])


# ----------------------------------------------------------------------------- the probe
@dataclass
class Standardizer:
    """``(x - mean) / std`` per feature dimension, with the statistics of the training features."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X):
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 0, std, 1.0))  # a constant feature stays 0

    def __call__(self, X):
        return (X - self.mean) / self.std


@dataclass
class LinearProbe:
    """A fitted multinomial logistic regression on standardized features.

    ``classes`` maps the probe's outputs back to the caller's labels: a probe can only name a class
    it saw labeled (it has no weights for any other).
    """

    W: np.ndarray              # (D, L)
    b: np.ndarray              # (L,)
    classes: np.ndarray        # (L,) the labels seen in training, sorted
    standardize: Standardizer
    l2: float
    iterations: int

    def logits(self, features):
        return self.standardize(np.asarray(features, dtype=np.float64)) @ self.W + self.b   # (N, L)

    def predict(self, features):
        return self.classes[np.argmax(self.logits(features), axis=1)]                     # (N,)

    def accuracy(self, features, labels):
        return float(np.mean(self.predict(features) == np.asarray(labels)))


def _check_features(name, X, y):
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
        raise ValueError(f"linear probe: expected {name} features (N, D) with N >= 1 and labels (N,), "
                         f"got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"linear probe: {name} features hold NaN or Inf")
    return X, y


def fit_linear_probe(features, labels, l2, max_iter=1000, init=None):
    """Fit W, b by L-BFGS on ``logistic_loss_and_grad``; ``init`` (a LinearProbe of the same classes
    and dimension) gives the starting point, which saves iterations during a sweep."""
    X, y = _check_features("training", features, labels)
    classes, y_index = np.unique(y, return_inverse=True)            # labels -> 0..L-1
    standardize = Standardizer.fit(X)
    Xs = standardize(X)
    d, n_classes = X.shape[1], len(classes)
    if init is not None and init.W.shape == (d, n_classes):
        theta0 = np.concatenate([init.W.ravel(), init.b])
    else:
        theta0 = np.zeros(d * n_classes + n_classes)
    result = minimize(logistic_loss_and_grad, theta0, args=(Xs, y_index, n_classes, l2), jac=True,
                      method="L-BFGS-B", options={"maxiter": max_iter})
    W = result.x[:d * n_classes].reshape(d, n_classes)
    return LinearProbe(W, result.x[d * n_classes:], classes, standardize, float(l2), int(result.nit))


def select_l2(train_features, train_labels, val_features, val_labels, steps_per_decade=8, low=-6.0, high=6.0):
    """The paper's parametric binary search for the L2 strength; returns ``(best probe, {l2: val accuracy})``.

    Start at half-decade steps over [10^low, 10^high]; then, around the best exponent, try the
    points half a step to each side and halve the step, until the step is 1 / ``steps_per_decade``.
    Ties go to the stronger regularization (the simpler model).
    """
    scores, probes = {}, {}

    def score(exponent):
        exponent = round(exponent, 6)
        if exponent not in scores:
            nearest = min(probes, key=lambda e: abs(e - exponent)) if probes else None
            warm = probes.get(nearest)  # start from the nearest fitted strength: few iterations
            probe = fit_linear_probe(train_features, train_labels, 10.0 ** exponent, init=warm)
            probes[exponent], scores[exponent] = probe, probe.accuracy(val_features, val_labels)
        return scores[exponent]

    step = 0.5
    for exponent in np.arange(high, low - 1e-9, -step):  # strong to weak: each fit warm-starts the next
        score(exponent)
    best = max(scores, key=lambda e: (scores[e], e))
    while step > 1.0 / steps_per_decade + 1e-9:
        step /= 2
        for exponent in (best - step, best + step):
            if low <= exponent <= high:
                score(exponent)
        best = max(scores, key=lambda e: (scores[e], e))
    return probes[best], {10.0 ** e: scores[e] for e in sorted(scores)}


def few_shot_subset(labels, shots, rng):
    """Indices of ``shots`` examples of each class present in ``labels`` (all of them if ``shots`` is None)."""
    labels = np.asarray(labels)
    if shots is None:
        return np.arange(len(labels))
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < shots:
            raise ValueError(f"few-shot: class {c} has {len(members)} examples, fewer than --shots {shots}")
        picks.append(rng.choice(members, size=shots, replace=False))
    return np.sort(np.concatenate(picks))
