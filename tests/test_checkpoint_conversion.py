"""Checkpoints move between PyTorch and TensorFlow: the converter command, and runs that load the other framework's."""
import json

import numpy as np
import pytest
from quiet_tensorflow import tf  # noqa: F401  (quiet, two threads, before anything starts TensorFlow)
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config, registry
from benchmark.cli import main
from benchmark.convert import convert, main as convert_main
from benchmark.errors import BenchmarkError, ConfigError, DataError

NETWORK = [token for token in TINY_NETWORK if token.startswith("network.")] + ["network.upsampling=convolutional"]


def implementation(framework, mode="2D", seed=3):
    cfg = config.load(["run.id=t", "run.compute_mode=CPU", f"run.seed={seed}", *NETWORK,
                       f"framework.name={framework}", f"network.conv_mode={mode}"])
    return registry.load_class(cfg)(cfg, TINY_SHAPE)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_checkpoint_suffixes_name_the_framework(framework):
    impl = implementation(framework)
    assert impl.checkpoint_suffix() == registry.CHECKPOINT_SUFFIXES[framework]
    assert registry.framework_of_checkpoint(f"a/model-5{impl.checkpoint_suffix()}") == framework


@pytest.mark.parametrize("mode", ["2D", "3D"])
def test_torch_to_tensorflow_and_back_keeps_every_weight(tmp_path, mode, capsys):
    original = implementation("torch", mode)
    original.save(str(tmp_path / "a.pt"))
    overrides = [*NETWORK, f"network.conv_mode={mode}"]
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "b.tf.npz"), *overrides]) == 0
    assert "wrote" in capsys.readouterr().out
    assert convert_main([str(tmp_path / "b.tf.npz"), str(tmp_path / "c.pt"), *overrides]) == 0
    via_tensorflow = implementation("tensorflow", mode, seed=4)
    via_tensorflow.load(str(tmp_path / "b.tf.npz"), weights_only=True)
    assert_same_weights(via_tensorflow.export_weights(), original.export_weights())
    back = implementation("torch", mode, seed=4)
    back.load(str(tmp_path / "c.pt"), weights_only=True)
    assert_same_weights(back.export_weights(), original.export_weights())


def test_bad_conversions_are_one_line_errors(tmp_path, capsys):
    source = tmp_path / "a.pt"
    implementation("torch").save(str(source))
    existing = tmp_path / "exists.tf.npz"
    existing.write_bytes(b"keep me")
    cases = [
        ((str(source), str(existing)), BenchmarkError, "is not overwritten"),
        ((str(source), str(tmp_path / "b.pt")), ConfigError, "nothing to convert"),
        ((str(source), str(tmp_path / "b.ckpt")), ConfigError, "not a checkpoint name"),
        ((str(tmp_path / "absent.pt"), str(tmp_path / "b.tf.npz")), DataError, "no such checkpoint"),
    ]
    for (src, dst), error, message in cases:
        with pytest.raises(error, match=message):
            convert(src, dst, NETWORK)
    assert existing.read_bytes() == b"keep me"
    # another network than the checkpoint's
    assert convert_main([str(source), str(tmp_path / "b.tf.npz"), *NETWORK, "network.n_initial_filters=3"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a checkpoint of this network" in err
    assert not (tmp_path / "b.tf.npz").exists()


def test_weights_that_do_not_fit_are_a_data_error():
    weights = implementation("torch").export_weights()
    weights.pop(sorted(weights)[0])
    for framework in ("torch", "tensorflow"):
        with pytest.raises(DataError, match="do not fit"):
            implementation(framework).import_weights(weights)


def test_inference_in_tensorflow_from_a_torch_checkpoint(tmp_path, capsys):
    """A 3D network trained in torch: TensorFlow's inference converts its checkpoint and gives the same loss."""
    common = ["data.synthetic=true", "data.synthetic_events=4", "data.seed=5", "run.minibatch_size=2",
              "run.aux_iterations=0", *TINY_NETWORK, "network.conv_mode=3D"]
    out = tmp_path / "trained"
    assert main(["mode=train", "run.id=t", f"run.output_dir={out}", "run.iterations=2", "mode.checkpoint_iteration=2", *common]) == 0
    assert main(["mode=inference", "run.id=t", f"run.output_dir={out}", *common]) == 0
    in_torch = json.load(open(out / "inference_report.json"))
    other = tmp_path / "tf"
    weights = out / "checkpoints" / "model-2.pt"
    capsys.readouterr()
    assert main(["mode=inference", "run.id=t", f"run.output_dir={other}", "framework.name=tensorflow",
                 f"mode.weights_location={weights}", *common]) == 0
    assert f"converted {weights}" in capsys.readouterr().out
    in_tensorflow = json.load(open(other / "inference_report.json"))
    assert in_tensorflow["events"] == in_torch["events"] == 4
    np.testing.assert_allclose(in_tensorflow["loss"], in_torch["loss"], rtol=1e-5)
    for key in ("Average/mIoU", "Average/Cosmic_IoU", "Average/Neutrino_IoU"):
        np.testing.assert_allclose(in_tensorflow[key], in_torch[key], rtol=1e-3, err_msg=key)
