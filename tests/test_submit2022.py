"""``sensorium submit RUN --track sensorium|sensorium+`` for a 2022 run: the starter kit's CSV
files written, read back and validated against the recording; a wrong track is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.cli import main
from sensorium_models.submission2022 import validate_submission_2022
from tests.conftest import write_tiny_static_tree


@pytest.fixture(scope="module")
def run_2022(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sensorium_data.store import convert

    root = tmp_path_factory.mktemp("submit2022")
    tree = write_tiny_static_tree(root / "tree" / "toy2022")
    store = convert(tree, root / "toy.zarr", progress=False)
    config = sm.TrainConfig(model="sota_2022", mice=(str(store),), val_tier="validation",
                            model_config={"hidden_channels": 4}, batch_size=4, max_epochs=1,
                            device="cpu", progress=False, out=str(root / "run"), score=False)
    return sm.train(config)


def test_submit_writes_the_live_and_final_test_csv(run_2022, tmp_path, capsys):
    out = tmp_path / "submission"
    assert main(["submit", str(run_2022), "--out", str(out), "--track", "sensorium",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in printed)
    assert names == ["submission_file_final_test.csv", "submission_file_live_test.csv"]
    ds = sd.open_mouse(sm.read_config(run_2022).mice[0])
    live = validate_submission_2022(out / "submission_file_live_test.csv", ds)
    final = validate_submission_2022(out / "submission_file_final_test.csv", ds)
    assert (live.tier, final.tier) == ("test", "final_test")
    assert live.predictions.shape == (4, 6) and (live.predictions > 0).all()
    # an ensemble of the run with itself predicts the same numbers
    again = tmp_path / "ensemble"
    main(["submit", str(run_2022), str(run_2022), "--out", str(again), "--track", "sensorium",
          "--device", "cpu"])
    twice = validate_submission_2022(again / "submission_file_live_test.csv", ds)
    assert (twice.predictions == live.predictions).all()


def test_submit_refuses_another_track_and_existing_files(run_2022, tmp_path, capsys):
    assert main(["submit", str(run_2022), "--out", str(tmp_path), "--track", "sensorium+",
                 "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert "trained for track 'sensorium', not 'sensorium+'" in err
    assert "Pass --track sensorium" in err
    main(["submit", str(run_2022), "--out", str(tmp_path), "--track", "sensorium",
          "--device", "cpu"])
    capsys.readouterr()
    assert main(["submit", str(run_2022), "--out", str(tmp_path), "--track", "sensorium",
                 "--device", "cpu"]) != 0
    assert "exist" in capsys.readouterr().err
