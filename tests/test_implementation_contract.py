"""What every implementation promises the harness, checked for each one the registry offers (framework x convolution
mode x optimized path, from `registry.offered()`): parameter counts, a step that learns, checkpoints that round-trip
bit for bit, deterministic evaluation, float32 master weights under every precision it accepts (a one-line refusal of
the others), micro-batch accumulation and checkpoint errors. Framework-specific behaviour (state internals, the device
scatter) stays in each framework's test file."""
import numpy as np
import pytest
from quiet_tensorflow import tf  # noqa: F401  (TensorFlow quiet and on two threads before any test starts it)
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config, registry
from benchmark.config.presets import NETWORK_PRESETS
from benchmark.config.schema import ConvMode, FrameworkKind, Precision
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from benchmark.errors import ConfigError, DataError

# Each convolution mode's network preset and upstream's trainable parameter count for it (reference sect. 2.3;
# tests/test_uresnet2d.py, test_uresnet3d.py and test_sparse_model.py derive them). A new mode needs its row here.
MODE_PRESETS = {"2D": ("uresnet", 18_382_131), "3D": ("uresnet3d", 18_381_459),
                "sparse": ("uresnet_sparse", 18_382_131)}


def offer_id(offer) -> str:
    framework, mode, optimized = offer
    return f"{framework}-{mode}" + ("-optimized" if optimized else "")


def compiled(offer) -> bool:
    """torch.compile: a minute or more per instance on two cores."""
    return offer[2]


def traced(offer) -> bool:
    """tf.function traces each instance's steps: 10-30 s for one that trains and evaluates, on two busy cores."""
    return offer[0] == "tensorflow"


def offers(*slow):
    """Every offered implementation as a parameter, marked slow where one of the `slow` predicates holds."""
    return [pytest.param(offer, id=offer_id(offer), marks=[pytest.mark.slow] if any(p(offer) for p in slow) else [])
            for offer in registry.offered()]


def settings(offer, *extra):
    framework, mode, optimized = offer
    return config.load(["run.id=t", *TINY_NETWORK, "run.seed=3", f"framework.name={framework}",
                        f"network.conv_mode={mode}", f"framework.optimized={str(optimized).lower()}", *extra])


def build(offer, *extra):
    cfg = settings(offer, *extra)
    return registry.load_class(cfg)(cfg, TINY_SHAPE)


def batch(entries):
    return load_batch(SyntheticSource(16, seed=9), np.asarray(entries), downsample=5)


def loss_of(impl, result) -> float:
    return float(impl.fetch(result.loss))


def pending_gradients(impl):
    """The gradients accumulated since the last update, one array per trainable weight."""
    if hasattr(impl, "accumulators"):  # TensorFlow keeps its own accumulators
        return [a.numpy().copy() for a in impl.accumulators]
    return [np.zeros(tuple(p.shape), np.float32) if p.grad is None else p.grad.detach().numpy().copy()
            for p in impl.model.parameters()]  # None: cleared


def optimizer_state(impl):
    """The optimizer's state (step counts, moments) as arrays, in a fixed order."""
    if hasattr(impl.optimizer, "variables"):  # Keras
        return [np.asarray(v.numpy()) for v in impl.optimizer.variables]
    state = impl.optimizer.state_dict()["state"]
    return [np.asarray(value) for index in sorted(state) for _, value in sorted(state[index].items())]


def master_weight_dtypes(impl):
    weights = impl.model.weights if hasattr(impl.model, "weights") else list(impl.model.parameters())
    return {str(w.dtype).replace("torch.", "") for w in weights}


def assert_identical(actual, expected):
    """Two weight dicts (or state lists) equal bit for bit."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        actual, expected = [actual[key] for key in expected], list(expected.values())
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("offer", offers())
def test_the_parameter_count_is_the_presets(offer):
    """The network preset of the implementation's convolution mode, at full size, has upstream's parameter count."""
    framework, mode, optimized = offer
    preset, count = MODE_PRESETS[mode]
    assert NETWORK_PRESETS[preset].get("conv_mode", "2D") == mode
    cfg = config.load(["run.id=t", f"network={preset}", "data.downsample=0", "run.compute_mode=CPU",
                       f"framework.name={framework}", f"framework.optimized={str(optimized).lower()}"])
    assert registry.load_class(cfg)(cfg, (1280, 2048)).parameter_count() == count


@pytest.mark.parametrize("offer", offers())
def test_the_parameter_count_is_the_reference_implementations(offer):
    """On the tiny network too: the same number as the reference (torch, not optimized) of its convolution mode."""
    _, mode, _ = offer
    assert build(offer).parameter_count() == build(("torch", mode, False)).parameter_count()


@pytest.mark.parametrize("offer", offers(compiled, traced))
def test_a_step_learns_a_checkpoint_round_trips_and_evaluation_repeats(offer, tmp_path):
    """One step with a usual learning rate lowers the loss on its batch. save, then load into a fresh instance: the
    same weights and optimizer state bit for bit, and the same next step. Evaluating twice gives the same outputs,
    bit for bit, and leaves the weights alone. (One test: each instance of some implementations costs seconds.)"""
    impl = build(offer)
    fixed = batch([0, 1])
    first_loss = loss_of(impl, impl.accumulate(fixed, 1.0))
    impl.apply_update(1e-3)  # also moves moments, step counts and running statistics off their initial values
    path = str(tmp_path / f"model{impl.checkpoint_suffix()}")
    impl.save(path)
    fresh = build(offer, "run.seed=4")
    assert any(not np.array_equal(value, impl.export_weights()[key]) for key, value in fresh.export_weights().items())
    fresh.load(path)
    assert_identical(fresh.export_weights(), impl.export_weights())
    assert_identical(optimizer_state(fresh), optimizer_state(impl))

    second_loss = loss_of(impl, impl.accumulate(fixed, 1.0))
    assert second_loss < first_loss, "one step did not lower the loss on its batch"  # training mode both times
    assert loss_of(fresh, fresh.accumulate(fixed, 1.0)) == second_loss
    impl.apply_update(1e-3)
    fresh.apply_update(1e-3)
    assert_identical(fresh.export_weights(), impl.export_weights())
    assert_identical(optimizer_state(fresh), optimizer_state(impl))

    weights = impl.export_weights()
    other = batch([2, 3])
    once, twice = impl.evaluate(other, with_predictions=True), impl.evaluate(other, with_predictions=True)
    for field in ("loss", "confusion", "predictions"):
        np.testing.assert_array_equal(impl.fetch(getattr(once, field)), impl.fetch(getattr(twice, field)), field)
    assert_identical(impl.export_weights(), weights)


def precision_cases():
    return [pytest.param(offer.values[0], precision.value, id=f"{precision.value}-{offer.id}", marks=offer.marks)
            for offer in offers(compiled, traced) for precision in Precision]


@pytest.mark.parametrize("offer,precision", precision_cases())
def test_every_precision_trains_with_float32_master_weights_or_is_refused_in_one_line(offer, precision):
    """Each run.precision either trains (float32 master weights, finite losses that fall) or is refused by the
    implementation's check in one line naming the setting, as the harness asks before any work; float32 is never."""
    cfg = settings(offer, f"run.precision={precision}", "network.weight_decay=1e-4")
    implementation = registry.load_class(cfg)
    try:
        implementation.check(cfg)
    except ConfigError as refused:
        message = str(refused)
        assert precision != "float32" and "\n" not in message and message.startswith(f"run.precision={precision}:")
        return
    impl = implementation(cfg, TINY_SHAPE)
    fixed = batch([0, 1])
    before = impl.export_weights()
    losses = []
    for _ in range(5):  # mixed: float16 overflows skip the first updates while the loss scale drops (torch-3D: two)
        losses.append(loss_of(impl, impl.accumulate(fixed, 1.0)))
        impl.apply_update(1e-2)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert master_weight_dtypes(impl) == {"float32"}
    assert any(not np.array_equal(value, before[key]) for key, value in impl.export_weights().items())
    result = impl.evaluate(fixed, with_predictions=True)
    predictions, confusion = impl.fetch(result.predictions), impl.fetch(result.confusion)
    assert predictions.dtype == np.uint8 and predictions.shape == (2, 3, *TINY_SHAPE)
    assert confusion.shape == (2, 3, 3, 3) and confusion.sum() == 2 * 3 * TINY_SHAPE[0] * TINY_SHAPE[1]


def accumulation_cases():
    """The default loss weighting for every implementation; the others (weights normalised per batch) for the
    2D reference of each framework."""
    cases = [pytest.param(offer.values[0], "light", id=f"light-{offer.id}", marks=offer.marks)
             for offer in offers(compiled)]
    references = [offer for offer in registry.offered() if offer[1] == "2D" and not offer[2]]
    return cases + [pytest.param(offer, scheme, id=f"{scheme}-{offer_id(offer)}")
                    for offer in references for scheme in ("none", "even", "focal")]


@pytest.mark.parametrize("offer,scheme", accumulation_cases())
def test_accumulation_equals_one_large_batch(offer, scheme):
    """Two micro-batches of 2 give the gradient and update of one batch of 4 (no batch norm), up to float32
    summation order."""
    extra = ("network.batch_norm=false", f"mode.optimizer.loss_balance_scheme={scheme}")
    whole, split = build(offer, *extra), build(offer, *extra)
    assert_identical(split.export_weights(), whole.export_weights())  # same seed, same initial weights
    whole.accumulate(batch([0, 1, 2, 3]), 1.0)
    split.accumulate(batch([0, 1]), 0.5)
    split.accumulate(batch([2, 3]), 0.5)
    for a, b in zip(pending_gradients(whole), pending_gradients(split)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    whole.apply_update(1e-3)
    split.apply_update(1e-3)
    updated = split.export_weights()
    for key, value in whole.export_weights().items():
        np.testing.assert_allclose(value, updated[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert not any(np.any(g) for g in pending_gradients(split))  # cleared by the update


@pytest.mark.parametrize("offer", offers())
def test_a_missing_or_corrupt_checkpoint_is_one_clear_error(offer, tmp_path):
    impl = build(offer)
    suffix = impl.checkpoint_suffix()
    assert suffix == registry.CHECKPOINT_SUFFIXES[offer[0]]
    with pytest.raises(DataError, match="no such checkpoint"):
        impl.load(str(tmp_path / f"absent{suffix}"))
    truncated = tmp_path / f"truncated{suffix}"
    impl.save(str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"not a checkpoint")
    for path in (truncated, garbage):
        with pytest.raises(DataError, match=f"{path.name}: not a checkpoint"):
            impl.load(str(path))


@pytest.mark.parametrize("offer", offers())
def test_a_checkpoint_of_another_network_names_the_first_mismatch(offer, tmp_path):
    wider = build(offer, "network.n_initial_filters=3")
    path = tmp_path / f"wider{wider.checkpoint_suffix()}"
    wider.save(str(path))
    with pytest.raises(DataError, match="not a checkpoint of this network") as refused:
        build(offer).load(str(path))
    message = str(refused.value)
    assert "\n" not in message and ("size mismatch for" in message or "has shape" in message), message


def test_the_registry_offers_exactly_what_it_loads():
    """The parametrisations above come from `registry.offered()`: every combination it lists loads an implementation
    of that name, and every other one the settings allow is refused before any work."""
    offered = registry.offered()
    assert len(set(offered)) == len(offered) and ("torch", "2D", False) in offered
    for framework in FrameworkKind:
        for mode in ConvMode:
            for optimized in (False, True):
                offer = (framework.value, mode.value, optimized)
                if offer in offered:
                    assert registry.load_class(settings(offer)).name == offer_id(offer)
                else:
                    with pytest.raises(ConfigError):
                        registry.check_available(settings(offer))
