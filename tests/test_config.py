"""Configuration: the original's keys and defaults, presets, the grammar, and refusals."""
import os
import subprocess
import sys

import pytest

from benchmark import config
from benchmark.cli import main
from benchmark.config.render import config_lines, help_text
from benchmark.config.validate import check_image_shape
from benchmark.config.schema import Connection, ConvMode, FrameworkKind, ModeKind
from benchmark.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every key of the original description's listing, with its default (README listing).
LISTING = {
    "data.aux_file": "cosmic_tagging_test.h5",
    "data.data_directory": "/grand/projects/datascience/cadams/datasets/SBND/",
    "data.data_format": "channels_last",
    "data.downsample": "1",
    "data.file": "cosmic_tagging_train.h5",
    "data.synthetic": "False",
    "framework.inter_op_parallelism_threads": "2",
    "framework.intra_op_parallelism_threads": "24",
    "framework.environment_variables.TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
    "mode.checkpoint_iteration": "500",
    "mode.logging_iteration": "1",
    "mode.name": "train",
    "mode.no_summary_images": "False",
    "mode.optimizer.gradient_accumulation": "1",
    "mode.optimizer.learning_rate": "0.0003",
    "mode.optimizer.loss_balance_scheme": "light",
    "mode.optimizer.name": "adam",
    "mode.summary_iteration": "1",
    "mode.weights_location": "",
    "network.batch_norm": "True",
    "network.bias": "True",
    "network.block_concat": "False",
    "network.blocks_deepest_layer": "5",
    "network.blocks_final": "5",
    "network.blocks_per_layer": "2",
    "network.bottleneck_deepest": "256",
    "network.connections": "concat",
    "network.conv_mode": "2D",
    "network.data_format": "channels_last",
    "network.downsampling": "max_pooling",
    "network.filter_size_deepest": "5",
    "network.growth_rate": "additive",
    "network.n_initial_filters": "16",
    "network.name": "uresnet",
    "network.network_depth": "6",
    "network.residual": "True",
    "network.upsampling": "interpolation",
    "network.weight_decay": "0.0",
    "run.aux_iterations": "10",
    "run.aux_minibatch_size": "16",
    "run.distributed": "False",
    "run.id": "test",
    "run.iterations": "50",
    "run.minibatch_size": "16",
    "run.output_dir": "output/torch/uresnet/test/",
    "run.precision": "float32",
    "run.profile": "False",
    # Deliberate differences from the listing: torch by default, the GPU when present.
    "framework.name": "torch",
    "run.compute_mode": "auto",
}


def flatten(lines):
    """The -- CONFIG -- text back into dotted keys."""
    stack, out = [], {}
    for line in lines[1:]:
        indent = (len(line) - len(line.lstrip())) // 2
        stack = stack[:indent]
        text = line.strip()
        if text.endswith(":") and ".:" not in text and not text.endswith("..:"):
            stack.append(text[:-1])
            continue
        key, value = text.split(": ", 1) if ": " in text else (text.rstrip(":"), "")
        out[".".join(stack + [key.rstrip(".")])] = value
    return out


def test_every_listing_key_and_default():
    printed = flatten(config_lines(config.load(["run.id=test"])))
    for key, value in LISTING.items():
        assert printed[key] == value, key
    assert printed["run.seed"] == "0" and printed["data.seed"] == "0"


def test_config_is_aligned_like_the_original():
    lines = config_lines(config.load(["run.id=test"]))
    assert lines[0] == "-- CONFIG --"
    assert "  aux_file....................: cosmic_tagging_test.h5" in lines
    assert "    gradient_accumulation.....: 1" in lines


def test_nested_overrides_groups_and_framework_flag():
    cfg = config.load(
        ["mode=inference", "run.id=x", "network=a21", "mode.optimizer.learning_rate=1e-3", "--framework", "torch",
         "network.conv_mode=2D", "data=synthetic", "framework.environment_variables.OMP_PROC_BIND=close"]
    )
    assert cfg.mode.name == ModeKind.inference
    assert cfg.mode.optimizer.learning_rate == pytest.approx(1e-3)
    assert cfg.framework.name == FrameworkKind.torch
    assert cfg.network.name == "a21" and cfg.network.n_initial_filters == 8 and cfg.network.connections == Connection.sum
    assert cfg.network.conv_mode == ConvMode.conv_2D
    assert cfg.data.synthetic is True
    assert cfg.framework.environment_variables["OMP_PROC_BIND"] == "close"
    assert cfg.run.output_dir == "output/torch/a21/x/"


def test_explicit_key_beats_preset_regardless_of_order():
    cfg = config.load(["network.n_initial_filters=4", "network=a21", "run.id=x"])
    assert cfg.network.n_initial_filters == 4


def test_a_group_chosen_twice_is_refused():
    with pytest.raises(ConfigError, match=r"network is chosen twice \(a21, then uresnet\)"):
        config.load(["network=a21", "run.id=x", "network=uresnet"])
    assert config.load(["network=a21", "network=a21", "run.id=x"]).network.name == "a21"  # the same choice again


def test_run_id_keeps_its_text():
    assert config.load(["run.id=007"]).run.id == "007"


@pytest.mark.parametrize(
    "tokens, fragment",
    [
        (["run.id=x", "learning_rate=1"], "unknown configuration key 'learning_rate'"),
        (["run.id=x", "mode.optimizer.lr=1"], "unknown configuration key 'mode.optimizer.lr'"),
        (["run.id=x", "network.network_depth=abc"], "network.network_depth: 'abc' is not allowed: expected an integer"),
        (["run.id=x", "network.connections=foo"], "network.connections: 'foo' is not allowed: expected one of concat, sum, none"),
        (["run.id=x", "network=unet"], "network=unet: unknown preset"),
        (["run.id=x", "mode=fly"], "mode.name: 'fly' is not allowed"),
        (["mode=train"], "run.id is required"),
        (["run.id=x", "run.minibatch_size=0"], "run.minibatch_size=0 is out of range"),
        (["run.id=x", "mode.optimizer.learning_rate=-1"], "learning_rate=-1.0 is out of range"),
        (["run.id=x", "run.id=../escape"], "run.id='../escape' is not allowed"),
        (["run.id=x", "--frame"], "unknown option '--frame'"),
        (["run.id=x", "verbose"], "'verbose' is not a setting"),
        (["run.id=x", "run.instances=0"], "run.instances=0 is out of range"),
        (["run.id=x", "run.distributed_port=70000"], "run.distributed_port=70000 is out of range"),
        (["run.id=x", "run.distributed_timeout=0"], "run.distributed_timeout=0 is out of range"),
        (["run.id=x", "network.filter_size_deepest=4"], "network.filter_size_deepest=4 must be odd"),
        (["run.id=x", "mode.optimizer.warmup_epochs=-1"], "mode.optimizer.warmup_epochs=-1.0 is out of range"),
        (["run.id=x", "mode.optimizer.warmup_epochs=2", "mode.optimizer.decay_end_epoch=2"],
         "mode.optimizer.decay_end_epoch=2.0 must be greater than mode.optimizer.warmup_epochs=2.0"),
        (["run.id=x", "mode.optimizer.final_lr_fraction=1.5"], "mode.optimizer.final_lr_fraction=1.5 is out of range"),
        (["run.id=x", "data.aux_events=-3"], "data.aux_events=-3 is out of range"),
    ],
)
def test_bad_configuration_is_one_clear_line(tokens, fragment):
    with pytest.raises(ConfigError) as info:
        config.load(tokens)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("depth, downsample, shape", [(6, 1, (640, 1024)), (5, 2, (320, 512)), (4, 3, (160, 256)), (6, 0, (1280, 2048))])
def test_image_sizes_the_network_can_halve(depth, downsample, shape):
    assert check_image_shape((1280, 2048), downsample, depth) == shape


@pytest.mark.parametrize("depth, downsample", [(7, 1), (8, 0), (6, 2), (3, 5)])
def test_image_size_rule_of_the_original(tmp_path, capsys, depth, downsample):
    """network_depth + downsample < 8 for 1280 rows; refused before anything is written."""
    out = tmp_path / "run"
    argv = ["mode=summary", "run.id=x", f"run.output_dir={out}", f"network.network_depth={depth}",
            f"data.downsample={downsample}", "data.synthetic=true"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "network_depth + downsample must be <= 7" in err
    assert not out.exists()


def test_every_framework_and_convolution_mode_has_an_implementation_but_tensorflow_sparse():
    from benchmark import registry

    for framework in ("torch", "tensorflow"):
        for mode in ("2D", "3D"):
            registry.check_available(config.load(["run.id=x", f"framework.name={framework}", f"network.conv_mode={mode}"]))
    registry.check_available(config.load(["run.id=x", "network.conv_mode=sparse"]))
    with pytest.raises(ConfigError, match="framework.name=tensorflow with network.conv_mode=sparse has no implementation"):
        registry.check_available(config.load(["run.id=x", "framework.name=tensorflow", "network.conv_mode=sparse"]))


def test_unavailable_implementation_is_refused(monkeypatch):
    from benchmark import registry

    monkeypatch.delitem(registry._IMPLEMENTATIONS, ("tensorflow", "3D"))
    with pytest.raises(ConfigError, match="tensorflow with network.conv_mode=3D has no implementation yet"):
        registry.check_available(config.load(["run.id=x", "framework.name=tensorflow", "network.conv_mode=3D"]))


def test_xla_is_refused_for_torch(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["mode=train", "run.id=x", f"run.output_dir={out}", "framework.xla=true", "data.synthetic=true"]) == 2
    assert "framework.xla=true applies to framework.name=tensorflow only" in capsys.readouterr().err
    assert not out.exists()


def test_help_lists_every_key_with_type_default_and_choices():
    text = help_text()
    for key in LISTING:
        if key.startswith("framework.environment_variables."):
            continue
        assert f"  {key} " in text, key
    assert "network.connections" in text and "[concat|sum|none]" in text
    assert "run.id" in text and "(required)" in text
    assert "run.compute_mode" in text and "[auto|CPU|GPU]" in text


def test_exec_refuses_without_traceback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "bin/exec.py", "mode=train", f"run.output_dir={out}", "learning_rate=1", "run.id=x"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: unknown configuration key 'learning_rate': the top level has data, framework, mode, network, run"
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()


def test_exec_help():
    proc = subprocess.run([sys.executable, "bin/exec.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "mode.optimizer.loss_balance_scheme" in proc.stdout
