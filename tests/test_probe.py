"""Linear probes (miniclip/evaluation/probe.py): the logistic-regression gradient against finite differences,
the L2 sweep, few-shot subsets, and clear errors."""

import numpy as np
import pytest

from miniclip import Tensor, gradcheck
from miniclip.autograd.function import Function
from miniclip.evaluation.probe import (Standardizer, few_shot_subset, fit_linear_probe, logistic_loss_and_grad,
                            select_l2)


class _ProbeLoss(Function):
    """The probe's loss as an autograd op of theta, so that ``gradcheck`` proves its gradient."""

    @staticmethod
    def forward(ctx, theta, X, y, n_classes, l2):
        loss, grad = logistic_loss_and_grad(theta, X, y, n_classes, l2)
        ctx.grad = grad
        return np.array(loss)

    @staticmethod
    def backward(ctx, dloss):
        return dloss * ctx.grad, None, None, None, None


def _blobs(n, d, classes, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    return centers[y] + spread * rng.standard_normal((n, d)), y


@pytest.mark.parametrize("l2", [0.0, 1e-2, 3.0])
@pytest.mark.parametrize("n,d,classes", [(1, 1, 2), (7, 3, 5), (20, 6, 3)])
def test_logistic_gradient_matches_finite_differences(n, d, classes, l2):
    X, y = _blobs(n, d, classes, seed=n + d)
    theta = Tensor(np.random.default_rng(1).standard_normal(d * classes + classes), requires_grad=True)
    error = gradcheck(lambda t: _ProbeLoss.apply(t, X, y, classes, l2), theta, name="logistic_loss")
    assert error < 1e-6


def test_logistic_loss_is_the_mean_cross_entropy_plus_the_l2_term():
    X, y = _blobs(5, 2, 3, seed=0)
    W, b = np.arange(6.0).reshape(2, 3) / 10, np.array([0.1, -0.2, 0.3])
    logits = X @ W + b
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(5), y]) + 0.5 * 0.7 * np.sum(W ** 2)
    loss, _ = logistic_loss_and_grad(np.concatenate([W.ravel(), b]), X, y, 3, 0.7)
    assert loss == pytest.approx(expected, rel=1e-12)
    # huge logits: the shift keeps exp finite
    loss, grad = logistic_loss_and_grad(np.concatenate([W.ravel() * 1e4, b]), X * 1e3, y, 3, 0.0)
    assert np.isfinite(loss) and np.isfinite(grad).all()


def test_probe_fits_separable_data_and_maps_its_classes_back():
    X, y = _blobs(300, 4, 3, seed=2, spread=0.3)
    y = np.array([10, 20, 30])[y]                      # labels need not be 0..L-1
    probe = fit_linear_probe(X, y, l2=1e-3)
    assert probe.accuracy(X, y) == 1.0
    assert set(probe.predict(X)) == {10, 20, 30}
    assert probe.W.shape == (4, 3)


def test_standardizer_uses_the_training_statistics_and_keeps_constant_features_finite():
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    s = Standardizer.fit(X)
    np.testing.assert_allclose(s(X), [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(s(np.array([[2.0, 7.0]])), [[0.0, 2.0]])


def test_select_l2_reaches_eight_steps_per_decade_and_prefers_the_validation_best():
    Xall, yall = _blobs(400, 5, 4, seed=4, spread=1.5)
    probe, scores = select_l2(Xall[:200], yall[:200], Xall[200:], yall[200:])
    exponents = np.log10(sorted(scores))
    assert exponents[0] == pytest.approx(-6) and exponents[-1] == pytest.approx(6)
    assert np.min(np.diff(exponents)) == pytest.approx(1 / 8)  # refined to 8 steps a decade at the peak
    assert scores[probe.l2] == max(scores.values())
    assert scores[probe.l2] > 0.8 and scores[1e6] < scores[probe.l2]  # the strongest L2 predicts the prior


def test_few_shot_subset_takes_k_of_each_class_and_is_seeded():
    labels = np.array([0, 1, 2] * 10)
    picks = few_shot_subset(labels, 4, np.random.default_rng(0))
    assert np.bincount(labels[picks]).tolist() == [4, 4, 4]
    assert (picks == few_shot_subset(labels, 4, np.random.default_rng(0))).all()
    assert len(few_shot_subset(labels, None, np.random.default_rng(0))) == 30
    with pytest.raises(ValueError, match="class 0 has 10 examples, fewer than --shots 11"):
        few_shot_subset(labels, 11, np.random.default_rng(0))


@pytest.mark.parametrize("X,y,message", [
    (np.zeros((0, 3)), np.zeros(0, int), "expected training features"),
    (np.zeros((4, 3)), np.zeros(5, int), "expected training features"),
    (np.full((2, 3), np.nan), np.zeros(2, int), "NaN or Inf"),
])
def test_probe_refuses_bad_features(X, y, message):
    with pytest.raises(ValueError, match=message):
        fit_linear_probe(X, y, l2=1.0)
