"""Zero-shot and retrieval metrics on constructed cases with known answers."""

import numpy as np
import pytest

from miniclip.autograd import Tensor
from miniclip.evaluation.retrieval import retrieval_metrics
from miniclip.evaluation.zeroshot import (confusion_matrix, topk_accuracy, true_class_rank, zero_shot_accuracy,
                                          zero_shot_classifier)


def test_identity_similarity_gives_perfect_recall():
    m = retrieval_metrics(np.eye(7))
    for d in ("image_to_text", "text_to_image"):
        assert m[f"{d}_R@1"] == 1.0 and m[f"{d}_R@5"] == 1.0 and m[f"{d}_R@10"] == 1.0
        assert m[f"{d}_mean_rank"] == 1.0 and m[f"{d}_median_rank"] == 1.0


def test_known_ranks_both_directions():
    # row i's true score is beaten by exactly i others (image->text ranks 0..5);
    # columns: transpose view of the same matrix.
    n = 6
    s = np.zeros((n, n))
    for i in range(n):
        s[i, i] = 10.0
        for j in [c for c in range(n) if c != i][:i]:
            s[i, j] = 20.0
    m = retrieval_metrics(s)
    assert m["image_to_text_R@1"] == pytest.approx(1 / 6)
    assert m["image_to_text_R@5"] == pytest.approx(5 / 6)
    assert m["image_to_text_R@10"] == 1.0
    assert m["image_to_text_mean_rank"] == pytest.approx(3.5)           # mean(0..5) + 1
    assert m["image_to_text_median_rank"] == 3.0                        # floor(2.5) + 1
    col_rank = [(s[:, j] > s[j, j]).sum() for j in range(n)]
    assert m["text_to_image_R@1"] == pytest.approx(np.mean(np.array(col_rank) < 1))


def test_ties_break_toward_lower_index():
    s = np.ones((3, 3))                      # everything tied
    np.testing.assert_array_equal(true_class_rank(s, np.arange(3)), [0, 1, 2])
    m = retrieval_metrics(s)
    assert m["image_to_text_R@1"] == pytest.approx(1 / 3)
    assert m["text_to_image_R@1"] == pytest.approx(1 / 3)


def test_topk_known_cases():
    logits = np.array([[0.0, 1, 2, 3, 4, 5, 6],    # label 6 is best -> rank 0
                       [6.0, 5, 4, 3, 2, 1, 0],    # label 4 -> rank 4 (top-5 yes, top-1 no)
                       [6.0, 5, 4, 3, 2, 1, 0]])   # label 5 -> rank 5 (top-5 no)
    acc = topk_accuracy(logits, np.array([6, 4, 5]), ks=(1, 5))
    assert acc[1] == pytest.approx(1 / 3)
    assert acc[5] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labels"):
        topk_accuracy(logits, np.array([0, 1, 7]))


def test_confusion_matrix():
    cm = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


class LookupModel:
    """A fake CLIP: texts embed by a table keyed on token row; images are their own features."""

    def __init__(self, table):
        self.table = table

    def encode_text(self, tokens):
        return Tensor(np.stack([self.table[int(t[0])] for t in tokens]))

    def encode_image(self, images):
        return Tensor(np.asarray(images, dtype=np.float64))


def test_zero_shot_classifier_averages_normalized_templates():
    # two classes, two templates; text id = 2 * class + template
    vocab = {"a {}": 0, "the {}": 1}
    table = {0: np.array([2.0, 0.0]), 1: np.array([0.0, 0.5]),     # class "x": directions e0 and e1
             2: np.array([0.0, -3.0]), 3: np.array([0.0, -1.0])}   # class "y": -e1 twice
    names = ["x", "y"]

    def tokenizer(texts):
        return np.array([[2 * names.index(t.split()[1]) + vocab[t.split()[0] + " {}"]] for t in texts])

    W = zero_shot_classifier(LookupModel(table), tokenizer, names, ["a {}", "the {}"])
    assert W.shape == (2, 2)
    # class x: mean of normalized (1, 0) and (0, 1) -> (1, 1)/sqrt 2 (scale of the raw vectors ignored)
    np.testing.assert_allclose(W[:, 0], [2 ** -0.5, 2 ** -0.5], rtol=1e-12)
    np.testing.assert_allclose(W[:, 1], [0.0, -1.0], atol=1e-12)
    # templates as callables work the same
    W2 = zero_shot_classifier(LookupModel(table), tokenizer, names, [lambda c: f"a {c}", lambda c: f"the {c}"])
    np.testing.assert_array_equal(W, W2)

    images = np.array([[1.0, 1.0], [0.1, -2.0], [3.0, 3.1]])
    out = zero_shot_accuracy(LookupModel(table), images, np.array([0, 1, 1]), W)
    assert out["top1"] == pytest.approx(2 / 3)
    assert out["top5"] == 1.0
    np.testing.assert_array_equal(out["predictions"], [0, 1, 0])
    np.testing.assert_allclose(out["logits"][0], [100.0, -100 * 2 ** -0.5], rtol=1e-12)
    np.testing.assert_array_equal(out["confusion"], [[1, 0], [1, 1]])


@pytest.mark.parametrize("template", ["a {1} photo", "a {x} photo", "a photo", "a {} {} photo", "a {:>9} photo",
                                      "a {!r} photo", "a { photo"])
def test_a_template_needs_exactly_one_empty_field(template):
    from miniclip.evaluation.zeroshot import check_template
    with pytest.raises(ValueError, match="template"):
        check_template(template)


@pytest.mark.parametrize("template", ["{}", "a photo of a {}.", "{{literal}} {}"])
def test_templates_with_one_field_pass(template):
    from miniclip.evaluation.zeroshot import check_template
    check_template(template)
