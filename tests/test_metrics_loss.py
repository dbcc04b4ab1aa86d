"""Metrics (harness, numpy), confusion and loss (torch) and the LR schedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark import metrics
from benchmark.config.schema import LossBalanceScheme, LRSchedule, OptimizerConfig
from benchmark.schedule import REFERENCE, learning_rate
from implementations.torch.confusion import confusion, predictions, row_bincount
from implementations.torch.loss import SegmentationLoss

ALL_SCHEMES = list(LossBalanceScheme)

# ---------------------------------------------------------------- metrics

# Plane 0: a 2x4 plane with every kind of error.
#   label            pred
#   0 0 1 1          0 1 1 1
#   0 2 2 1          0 2 0 0
# correct: 5 of 8                               -> Total_Accuracy   0.625
# true non-bkg: 5 pixels, 3 right               -> Non_Bkg_Accuracy 0.6
# cosmic: true {(0,2),(0,3),(1,3)}, pred {(0,1),(0,2),(0,3)}: 2 / 4 -> 0.5
# neutrino: true {(1,1),(1,2)}, pred {(1,1)}: 1 / 2                -> 0.5
LABEL_0 = [[0, 0, 1, 1], [0, 2, 2, 1]]
PRED_0 = [[0, 1, 1, 1], [0, 2, 0, 0]]
CONFUSION_0 = [[2, 1, 0], [1, 2, 0], [1, 0, 1]]
# Plane 1: all background, predicted right: nothing to get wrong -> every metric 1.0.
LABEL_1 = [[0, 0, 0, 0], [0, 0, 0, 0]]
PRED_1 = LABEL_1
# Plane 2: no neutrino anywhere, but one pixel predicted neutrino.
#   label            pred
#   0 1 1 0          2 1 1 0
#   0 0 0 0          0 0 0 0
# Total 7/8 = 0.875; non-bkg 2/2 = 1; cosmic 2/2 = 1; neutrino 0/(0+1-0) = 0; mIoU 0.5
LABEL_2 = [[0, 1, 1, 0], [0, 0, 0, 0]]
PRED_2 = [[2, 1, 1, 0], [0, 0, 0, 0]]

EXPECTED_PLANES = {
    "Total_Accuracy": (0.625, 1.0, 0.875),
    "Non_Bkg_Accuracy": (0.6, 1.0, 1.0),
    "Cosmic_IoU": (0.5, 1.0, 1.0),
    "Neutrino_IoU": (0.5, 1.0, 0.0),
    "mIoU": (0.5, 1.0, 0.5),
}


def hand_event():
    label = np.array([[LABEL_0, LABEL_1, LABEL_2]], dtype=np.uint8)
    pred = np.array([[PRED_0, PRED_1, PRED_2]], dtype=np.uint8)
    return pred, label


def random_confusion(rng, events, high=5):
    return rng.integers(0, high, size=(events, 3, 3, 3))


def test_confusion_from_arrays_by_hand():
    pred, label = hand_event()
    cm = metrics.confusion_from_arrays(pred, label)
    assert cm.shape == (1, 3, 3, 3) and cm.dtype == np.int64
    np.testing.assert_array_equal(cm[0, 0], CONFUSION_0)
    np.testing.assert_array_equal(cm[0, 1], [[8, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(cm[0, 2], [[5, 0, 1], [0, 2, 0], [0, 0, 0]])


def test_metrics_by_hand():
    values = metrics.per_event(metrics.confusion_from_arrays(*hand_event()))
    assert set(values) == set(metrics.METRIC_NAMES)
    for name, expected in EXPECTED_PLANES.items():
        np.testing.assert_allclose(values[name][0], expected, err_msg=name)


def test_summary_keys_and_average():
    summary = metrics.summarize(metrics.confusion_from_arrays(*hand_event()))
    expected_keys = {f"plane{p}/{n}" for p in range(3) for n in metrics.METRIC_NAMES}
    expected_keys |= {f"Average/{n}" for n in metrics.METRIC_NAMES}
    assert set(summary) == expected_keys
    for name, planes in EXPECTED_PLANES.items():
        for p in range(3):
            assert summary[f"plane{p}/{name}"] == pytest.approx(planes[p])
        assert summary[f"Average/{name}"] == pytest.approx(sum(planes) / 3)
    # Worked out: Average/Neutrino_IoU = (0.5 + 1 + 0) / 3.
    assert summary["Average/Neutrino_IoU"] == pytest.approx(0.5)


def test_empty_class_conventions():
    cm = np.zeros((1, 3, 3, 3), dtype=np.int64)
    cm[0, :, 0, 0] = 10  # only background, all right
    values = metrics.per_event(cm)
    for name in metrics.METRIC_NAMES:
        np.testing.assert_array_equal(values[name], 1.0, err_msg=name)
    cm[0, 0, 0, 2] = 1  # plane 0: one background pixel predicted neutrino
    values = metrics.per_event(cm)
    assert values["Neutrino_IoU"][0, 0] == 0.0
    assert values["Non_Bkg_Accuracy"][0, 0] == 1.0  # still no true non-bkg pixel
    assert values["Cosmic_IoU"][0, 0] == 1.0
    assert values["mIoU"][0, 0] == 0.5


def test_never_nan():
    rng = np.random.default_rng(1)
    degenerate = np.zeros((4, 3, 3, 3), dtype=np.int64)  # planes without any pixel
    degenerate[1, :, 2, 0] = 3  # only true neutrino, all missed
    degenerate[2, :, 0, 1] = 3  # only false cosmic
    for cm in (random_confusion(rng, 200, high=2), degenerate):
        for name, value in metrics.per_event(cm).items():
            assert np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1)), name
        assert all(math.isfinite(v) for v in metrics.summarize(cm).values())
    assert metrics.per_event(degenerate)["Non_Bkg_Accuracy"][1, 0] == 0.0


def test_aggregation_is_mean_over_events():
    # Event A: cosmic IoU 1 (3 of 3); event B: cosmic IoU 0 (1 true, 1 missed).
    # Mean over events: 0.5. A pooled IoU would be 3 / 4 = 0.75.
    cm = np.zeros((2, 3, 3, 3), dtype=np.int64)
    cm[:, :, 0, 0] = 5
    cm[0, :, 1, 1] = 3
    cm[1, :, 1, 0] = 1
    summary = metrics.summarize(cm)
    assert summary["plane0/Cosmic_IoU"] == pytest.approx(0.5)
    rng = np.random.default_rng(2)
    cm = random_confusion(rng, 7)
    values = metrics.per_event(cm)
    summary = metrics.summarize(cm)
    for name in metrics.METRIC_NAMES:
        for p in range(3):
            assert summary[f"plane{p}/{name}"] == pytest.approx(values[name][:, p].mean())
        assert summary[f"Average/{name}"] == pytest.approx(values[name].mean())


def test_accumulator_equals_all_events_at_once():
    rng = np.random.default_rng(3)
    batches = [random_confusion(rng, n) for n in (3, 1, 5)]
    acc = metrics.MetricAccumulator()
    for batch in batches:
        acc.add(batch)
    assert acc.count == 9
    everything = np.concatenate(batches)
    assert acc.summary() == pytest.approx(metrics.summarize(everything))
    np.testing.assert_array_equal(acc.per_event()["mIoU"], metrics.per_event(everything)["mIoU"])
    acc.reset()
    assert acc.count == 0
    with pytest.raises(ValueError):
        acc.summary()


def test_bad_shapes_rejected():
    with pytest.raises(ValueError):
        metrics.per_event(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError):
        metrics.confusion_from_arrays(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 3)))
    with pytest.raises(ValueError):
        metrics.confusion_from_arrays(np.full((1, 3, 2, 2), 3), np.zeros((1, 3, 2, 2)))


# ---------------------------------------------------------------- torch confusion


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int64])
def test_torch_confusion_matches_numpy(label_dtype):
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 3, 3, 5, 7, generator=gen)
    labels = torch.randint(0, 3, (3, 3, 5, 7), generator=gen).to(label_dtype)
    pred = predictions(logits)
    assert pred.dtype == torch.uint8 and pred.shape == labels.shape
    np.testing.assert_array_equal(pred.numpy(), logits.numpy().argmax(axis=2))
    cm = confusion(logits, labels)
    assert cm.dtype == torch.int64 and cm.shape == (3, 3, 3, 3)
    np.testing.assert_array_equal(cm.numpy(), metrics.confusion_from_arrays(pred.numpy(), labels.numpy()))
    assert int(cm.sum()) == labels.numel()


@pytest.mark.parametrize("pixels", [1, 255, 256, 1000])
def test_row_bincount_matches_numpy(pixels):
    gen = torch.Generator().manual_seed(pixels)
    values = torch.randint(0, 9, (4, pixels), generator=gen)
    expected = np.stack([np.bincount(row, minlength=9) for row in values.numpy()])
    np.testing.assert_array_equal(row_bincount(values, 9).numpy(), expected)


def test_torch_confusion_large_plane():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 3, 3, 40, 50, generator=gen)
    labels = torch.randint(0, 3, (2, 3, 40, 50), generator=gen, dtype=torch.uint8)
    expected = metrics.confusion_from_arrays(logits.numpy().argmax(axis=2), labels.numpy())
    np.testing.assert_array_equal(confusion(logits, labels).numpy(), expected)


def test_torch_confusion_by_hand():
    pred, label = hand_event()
    # Logits whose argmax is `pred`.
    logits = torch.nn.functional.one_hot(torch.from_numpy(pred).long(), 3).permute(0, 1, 4, 2, 3).float()
    cm = confusion(logits, torch.from_numpy(label))
    np.testing.assert_array_equal(cm[0, 0].numpy(), CONFUSION_0)


# ---------------------------------------------------------------- loss


def reference_loss(logits: torch.Tensor, labels: torch.Tensor, scheme: LossBalanceScheme) -> float:
    """The loss written out pixel by pixel in plain Python floats."""
    batch, planes, classes, height, width = logits.shape
    total = 0.0
    for p in range(planes):
        per_event = []
        for b in range(batch):
            pixels = []
            for y in range(height):
                for x in range(width):
                    z = [float(logits[b, p, c, y, x]) for c in range(classes)]
                    t = int(labels[b, p, y, x])
                    log_norm = math.log(sum(math.exp(v) for v in z))
                    p_true = math.exp(z[t] - log_norm)
                    pixels.append((t, log_norm - z[t], p_true))
            counts = [sum(1 for t, _, _ in pixels if t == c) for c in range(classes)]
            num = den = 0.0
            for t, ce, p_true in pixels:
                w = {
                    LossBalanceScheme.none: 1.0,
                    LossBalanceScheme.light: (1.0, 1.5, 10.0)[t],
                    LossBalanceScheme.even: 0.3333 / (counts[t] + 1),
                    LossBalanceScheme.focal: (1.0 - p_true) ** 2,
                }[scheme]
                num += w * ce
                den += w
            per_event.append(num / den if den > 0 else 0.0)
        total += sum(per_event) / batch
    return total


def random_batch(events=2, height=2, width=3, seed=5, labels=None):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(events, 3, 3, height, width, generator=gen) * 2
    if labels is None:
        labels = torch.randint(0, 3, (events, 3, height, width), generator=gen, dtype=torch.uint8)
    return logits, labels


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_loss_matches_pixel_by_pixel(scheme):
    logits, labels = random_batch()
    labels[0, 1] = 0  # an event-plane with background only
    loss = SegmentationLoss(scheme)(logits, labels)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    assert float(loss) == pytest.approx(reference_loss(logits, labels, scheme), rel=1e-5)
    # int64 labels and low-precision logits give the same float32 loss.
    assert float(SegmentationLoss(scheme)(logits, labels.long())) == pytest.approx(float(loss), rel=1e-6)
    assert SegmentationLoss(scheme)(logits.bfloat16(), labels).dtype == torch.float32


def test_none_is_scalar_and_backward_works():
    logits, labels = random_batch()
    logits.requires_grad_(True)
    loss = SegmentationLoss(LossBalanceScheme.none)(logits, labels)
    assert loss.shape == ()
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("missing", [1, 2])
def test_even_with_absent_class_is_finite(missing):
    logits, labels = random_batch(events=3, height=4, width=4)
    labels[labels == missing] = 0
    logits.requires_grad_(True)
    loss = SegmentationLoss(LossBalanceScheme.even)(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert float(loss.detach()) == pytest.approx(reference_loss(logits.detach(), labels, LossBalanceScheme.even), rel=1e-5)


def test_focal_with_perfect_predictions_is_finite():
    _, labels = random_batch(events=2, height=3, width=3)
    perfect = 100.0 * torch.nn.functional.one_hot(labels.long(), 3).permute(0, 1, 4, 2, 3).float()
    perfect.requires_grad_(True)
    loss = SegmentationLoss(LossBalanceScheme.focal)(perfect, labels)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(perfect.grad).all()
    # One perfect event next to an imperfect one: finite, and only the imperfect one counts.
    logits, _ = random_batch(events=2, height=3, width=3)
    mixed = torch.cat([perfect.detach()[:1], logits[1:]])
    focal = SegmentationLoss(LossBalanceScheme.focal)
    assert float(focal(mixed, labels)) == pytest.approx(float(focal(logits[1:], labels[1:])) / 2, rel=1e-6)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_gradient_accumulation_identity(scheme):
    """A batch of 4 = the mean of its two halves: loss and gradient w.r.t. the logits."""
    logits, labels = random_batch(events=4, height=4, width=5, seed=6)
    loss_fn = SegmentationLoss(scheme)
    whole = logits.clone().requires_grad_(True)
    loss_whole = loss_fn(whole, labels)
    loss_whole.backward()
    halves = [logits[:2].clone().requires_grad_(True), logits[2:].clone().requires_grad_(True)]
    losses = [loss_fn(half, labels[2 * i:2 * i + 2]) for i, half in enumerate(halves)]
    loss_mean = (losses[0] + losses[1]) / 2
    loss_mean.backward()
    assert loss_whole.item() == pytest.approx(loss_mean.item(), abs=1e-6)
    grad_halves = torch.cat([half.grad for half in halves])
    torch.testing.assert_close(whole.grad, grad_halves, rtol=0, atol=1e-6)


def test_loss_rejects_mismatched_shapes():
    logits, labels = random_batch()
    with pytest.raises(ValueError):
        SegmentationLoss(LossBalanceScheme.light)(logits, labels[:, :, :1])


# ---------------------------------------------------------------- schedule

PEAK = 3e-4
FLOOR = REFERENCE.floor
IMAGES, EVENTS = 10, 1000  # 100 steps per epoch


def rate(step, schedule=LRSchedule.reference, peak=PEAK):
    return learning_rate(step, OptimizerConfig(learning_rate=peak, lr_schedule=schedule), IMAGES, EVENTS)


def test_reference_warmup():
    assert rate(0) == pytest.approx(1e-4)
    assert rate(50) == pytest.approx(2e-4)  # half way through epoch 0
    assert rate(99) == pytest.approx(1e-4 + 2e-4 * 0.99)
    assert rate(100) == pytest.approx(PEAK)
    warmup = [rate(s) for s in range(101)]
    assert all(a < b for a, b in zip(warmup, warmup[1:]))


def test_reference_flat_then_decay():
    assert all(rate(s) == PEAK for s in range(100, 2101, 50))  # epochs 1 .. 21
    assert rate(2200) == pytest.approx((PEAK - 1e-4) * math.exp(-0.999) + 1e-4)  # epoch 22
    decay = [rate(s) for s in range(2100, 4000, 10)]  # epochs 21 .. 40, above float resolution
    assert all(a > b for a, b in zip(decay, decay[1:]))
    tail = [rate(s) for s in range(4000, 10000, 100)]
    assert all(FLOOR <= b <= a for a, b in zip(tail, tail[1:]))
    assert rate(10 ** 6) == pytest.approx(FLOOR, rel=1e-9) and rate(10 ** 6) >= FLOOR


def test_flat_schedule_is_constant():
    assert {rate(s, LRSchedule.flat) for s in (0, 1, 99, 100, 2100, 10 ** 6)} == {PEAK}


def test_schedule_accepts_omegaconf_and_strings():
    cfg = OmegaConf.structured(OptimizerConfig(learning_rate=PEAK))
    assert learning_rate(50, cfg, IMAGES, EVENTS) == pytest.approx(2e-4)
    cfg.lr_schedule = "flat"
    assert learning_rate(50, cfg, IMAGES, EVENTS) == PEAK
    with pytest.raises(ValueError):
        learning_rate(1, cfg, IMAGES, 0)


def cosine(step, warmup=0.5, end=4.0, final=0.01, peak=PEAK):
    cfg = OptimizerConfig(learning_rate=peak, lr_schedule=LRSchedule.warmup_cosine, warmup_epochs=warmup,
                          decay_end_epoch=end, final_lr_fraction=final)
    return learning_rate(step, cfg, IMAGES, EVENTS)


def test_warmup_cosine_warms_up_linearly_from_the_first_step():
    # step s trains at the rate of the epoch where it ends: (s + 1) / 100 epochs, warm-up over 0.5 epochs
    assert cosine(0) == pytest.approx(PEAK * 0.01 / 0.5)
    assert cosine(24) == pytest.approx(PEAK * 0.5)
    assert cosine(49) == pytest.approx(PEAK)
    warmup = [cosine(s) for s in range(50)]
    assert all(0 < a < b for a, b in zip(warmup, warmup[1:]))


def test_warmup_cosine_decays_to_its_final_fraction_and_stays():
    final = PEAK * 0.01
    assert cosine(224) == pytest.approx(final + (PEAK - final) * 0.5)  # epoch 2.25: half way from 0.5 to 4.0
    assert cosine(119) == pytest.approx(final + (PEAK - final) * 0.5 * (1 + math.cos(math.pi * 0.2)))  # epoch 1.2
    decay = [cosine(s) for s in range(49, 400)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert [cosine(s) for s in (399, 400, 1000, 10 ** 6)] == pytest.approx([final] * 4)
    assert cosine(10 ** 6, final=0.0) == 0.0


def test_warmup_cosine_without_warmup_starts_decaying_at_once():
    final = PEAK * 0.01
    expected = final + (PEAK - final) * 0.5 * (1 + math.cos(math.pi * 0.01 / 4.0))  # step 0 ends at epoch 0.01
    assert cosine(0, warmup=0.0) == pytest.approx(expected)
    assert final < cosine(0, warmup=0.0) < PEAK
