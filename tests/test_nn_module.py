"""``Module`` bookkeeping: registration, dotted names, state dicts, train/eval, zero_grad."""

import numpy as np
import pytest

from miniclip import Tensor, nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(()))
        self.fc = nn.Linear(3, 2, dtype=np.float64)
        self.layers = nn.ModuleList([nn.LayerNorm(2, dtype=np.float64) for _ in range(2)])
        self.not_a_parameter = np.zeros(4)  # plain attributes are not registered

    def forward(self, x):
        x = self.fc(x) * self.scale
        for ln in self.layers:
            x = ln(x)
        return x


def test_registration_and_dotted_names_in_definition_order():
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "layers.0.weight", "layers.0.bias",
                     "layers.1.weight", "layers.1.bias"]


def test_parameter_shapes_follow_pytorch():
    lin = nn.Linear(3, 5)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (5,) and lin.weight.dtype == np.float32
    assert nn.Linear(3, 5, bias=False).bias is None
    assert [n for n, _ in nn.Linear(3, 5, bias=False).named_parameters()] == ["weight"]
    assert isinstance(lin.weight, Tensor) and lin.weight.requires_grad


def test_reassignment_replaces_and_none_unregisters():
    b = Block()
    b.fc = nn.Linear(3, 2, bias=False, dtype=np.float64)
    b.scale = None
    assert [n for n, _ in b.named_parameters()][:2] == ["fc.weight", "layers.0.weight"]


def test_state_dict_round_trip_copies():
    a, b = Block(), Block()
    for p in a.parameters():
        p.data[...] = np.random.default_rng(0).standard_normal(p.shape)
    sd = a.state_dict()
    sd["fc.weight"][...] = 7.0  # a copy: changing it leaves the model alone
    assert not np.all(a.fc.weight.data == 7.0)
    b.load_state_dict(a.state_dict())
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.data, pb.data)
        assert pa.data is not pb.data


def test_load_state_dict_errors_name_keys_and_shapes():
    model = Block()
    sd = model.state_dict()
    bad = dict(sd, **{"fc.weight": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"fc\.weight.*\(3, 2\).*\(2, 3\)"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in sd.items() if k != "layers.1.bias"}
    with pytest.raises(ValueError, match=r"missing keys: layers\.1\.bias"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys: extra\.weight"):
        model.load_state_dict(dict(sd, **{"extra.weight": np.zeros(1)}))
    result = model.load_state_dict(dict(missing, **{"extra.weight": np.zeros(1)}), strict=False)
    assert result.missing_keys == ["layers.1.bias"] and result.unexpected_keys == ["extra.weight"]


def test_failed_load_changes_nothing():
    model = Block()
    before = model.state_dict()
    sd = {k: np.full(v.shape, 3.0) for k, v in before.items()}
    sd["layers.0.bias"] = np.zeros(5)
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_casts_to_the_parameter_dtype():
    lin = nn.Linear(2, 2)  # float32
    lin.load_state_dict({"weight": np.ones((2, 2), dtype=np.float16), "bias": np.zeros(2)})
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32


def test_train_eval_and_zero_grad():
    model = Block()
    assert model.eval() is model and not model.layers[1].training
    assert model.train().fc.training
    x = Tensor(np.ones((4, 3)))
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_module_list_indexing():
    ml = nn.ModuleList([nn.LayerNorm(2), nn.LayerNorm(3)])
    assert len(ml) == 2 and ml[1].normalized_shape == 3 and [m.normalized_shape for m in ml] == [2, 3]
    with pytest.raises(TypeError):
        ml.append(np.zeros(2))


def test_parameter_owns_a_copy_and_must_be_float():
    arr = np.zeros(3)
    p = nn.Parameter(arr)
    p.data[0] = 1
    assert arr[0] == 0
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Parameter(np.zeros(3, dtype=np.int64))


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(RuntimeError, match="super\\(\\).__init__"):
        Bad()


@pytest.mark.parametrize("shape", [(), (5,), (0, 3), (3, 4, 5), (1500, 701)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_normal_draws_in_blocks_the_numbers_of_one_draw(shape, dtype, monkeypatch):
    """init.normal fills its result block by block (no full-size float64 temporaries); the numbers,
    and the generator's state after them, are those of one draw of the whole array."""
    from miniclip.nn import init
    monkeypatch.setattr(init, "BLOCK", 1000)              # several blocks, the last one partial
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    got = init.normal(rng_a, shape, 0.02, dtype)
    want = (0.02 * rng_b.standard_normal(shape)).astype(dtype)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert rng_a.standard_normal() == rng_b.standard_normal()
