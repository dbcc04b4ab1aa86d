"""Training FLOP is either counted or estimated (3 x forward), and every printed figure says which."""
import pytest
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.implementation import ModelCost


def test_an_estimated_cost_is_three_forwards_and_says_so():
    cost = ModelCost.from_forward(2e9, 5e6)
    assert (cost.forward_flop, cost.train_step_flop, cost.activation_bytes) == (2e9, 6e9, 5e6)
    assert cost.train_step_flop_estimated and cost.train_step_flop_note == "estimated, 3x forward"
    counted = ModelCost(2e9, 5.5e9, 5e6)
    assert not counted.train_step_flop_estimated and counted.train_step_flop_note == "counted"


def _summary_line(tmp_path, capsys, *settings) -> str:
    assert main(["mode=summary", "run.id=cost", f"run.output_dir={tmp_path}", *TINY_NETWORK, *settings]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if "training FLOP per image" in line)


@pytest.mark.parametrize("settings, note", [
    ([], "counted"),  # torch's dense models: forward and backward counted on the meta device
    (["network.conv_mode=3D"], "counted"),
    (["framework.name=tensorflow"], "estimated, 3x forward"),
    (["network.conv_mode=sparse"], "estimated, 3x forward"),
], ids=["torch-2D", "torch-3D", "tensorflow-2D", "torch-sparse"])
def test_the_summary_says_how_the_training_flop_was_found(tmp_path, capsys, settings, note):
    assert _summary_line(tmp_path, capsys, *settings).endswith(f" G (forward + backward, {note})")
