"""sensorium_data.simulate: presets, the written file trees, determinism and bad input.

The twin's science (stimuli, tuning, noise) is tested in test_simulate_twin.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sensorium_data.simulate import list_presets, simulate
from sensorium_data.simulate.presets import TINY_FRAMES, sensorium2023, tiny
from sensorium_data.simulate.recording import write_mouse
from sensorium_data.simulate.stimuli import STIMULUS_TYPES
from sensorium_data.tree import TIERS, open_tree, valid_frames

SCALE = 0.25  # tiny at a quarter: 20-30 neurons and 23 trials per mouse


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate(root, preset="tiny", seed=3, scale=SCALE, progress=False)
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_list_presets() -> None:
    assert list_presets() == ["tiny", "sensorium2023", "static2022"]


def test_tiny_writes_one_recording_per_mouse(tiny_root: Path) -> None:
    folders = sorted(p.name for p in tiny_root.iterdir())
    assert folders == ["tiny-A", "tiny-B", "tiny-C"]
    tiers: set[str] = set()
    stimuli: set[str] = set()
    for name in folders:
        tree = open_tree(tiny_root / name)
        assert tree.streams == ("videos", "responses", "behavior", "pupil_center", "rates")
        tiers |= set(tree.tiers)
        labels = tree.trial_labels("stimulus_type")
        assert labels is not None
        stimuli |= set(labels)
        # natural videos only in train, oracle and the main test tiers; OOD only in bonus tiers
        natural = labels == "NaturalVideo"
        assert set(tree.tiers[natural]) <= {"train", "oracle", "live_test_main", "final_test_main"}
        assert set(tree.tiers[~natural]) <= {"live_test_bonus", "final_test_bonus"}
    assert tiers == set(TIERS)
    assert stimuli == set(STIMULUS_TYPES)


def test_tiny_trees_are_in_the_real_format(tiny_root: Path) -> None:
    tree = open_tree(tiny_root / "tiny-A")
    shapes = tree.check_shapes()
    n = len(np.load(tiny_root / "tiny-A/meta/neurons/unit_ids.npy"))
    frames = shapes["videos"][0][-1]
    assert shapes["videos"][0] == (36, 64, frames)
    assert shapes["responses"][0] == shapes["rates"][0] == (n, frames)
    assert shapes["behavior"][0] == shapes["pupil_center"][0] == (2, frames)
    assert {dtype for _, dtype in shapes.values()} == {np.dtype(np.float32)}
    unit_ids = np.load(tiny_root / "tiny-A/meta/neurons/unit_ids.npy")
    assert np.all(np.diff(unit_ids) > 0)
    coords = np.load(tiny_root / "tiny-A/meta/neurons/cell_motor_coordinates.npy")
    assert coords.shape == (n, 3)
    # mouse A has indices without files, like the real mice A-E
    all_tiers = np.load(tiny_root / "tiny-A/meta/trials/tiers.npy")
    assert (all_tiers == "none").sum() == 3
    assert len(tree.trials) == (all_tiers != "none").sum()
    for name in ("stimulus_type", "video_id"):
        assert np.load(tiny_root / f"tiny-A/meta/trials/{name}.npy").shape == all_tiers.shape
    for stream in ("videos", "responses", "rates"):
        assert tree.statistics(stream)["mean"].shape == shapes[stream][0]


def test_trials_are_nan_padded_past_their_valid_frames(tiny_root: Path) -> None:
    tree = open_tree(tiny_root / "tiny-C")
    labels = tree.trial_labels("stimulus_type")
    assert labels is not None
    for trial, stimulus in zip(tree.trials, labels, strict=True):
        video = tree.read("videos", int(trial))
        valid = valid_frames(video)
        assert valid == TINY_FRAMES[stimulus]
        for stream in ("responses", "rates", "behavior", "pupil_center"):
            values = tree.read(stream, int(trial))
            assert not np.isnan(values[..., :valid]).any(), stream
            assert np.isnan(values[..., valid:]).all(), stream
        responses = tree.read("responses", int(trial))[:, :valid]
        assert responses.min() >= 0
        assert 0 <= np.nanmin(video) and np.nanmax(video) <= 255


def test_repeats_show_the_same_video(tiny_root: Path) -> None:
    tree = open_tree(tiny_root / "tiny-B")
    video_ids = tree.trial_labels("video_id")
    assert video_ids is not None
    repeated = [v for v in set(video_ids) if (video_ids == v).sum() > 1]
    assert repeated
    for vid in repeated:
        trials = tree.trials[video_ids == vid]
        first = tree.read("videos", int(trials[0]))
        responses = [tree.read("responses", int(t)) for t in trials]
        for trial, response in zip(trials[1:], responses[1:], strict=True):
            np.testing.assert_array_equal(tree.read("videos", int(trial)), first)
            assert not np.array_equal(response, responses[0])  # noise and behaviour differ


def test_simulation_metadata(tiny_root: Path) -> None:
    meta = json.loads((tiny_root / "tiny-B/meta/simulation.json").read_text())
    assert meta["preset"] == "tiny" and meta["seed"] == 3 and meta["scale"] == SCALE
    assert meta["mouse"] == "tiny-B" and meta["fps"] == 30.0 and meta["scan_hz"] == 8.0
    assert {"neurons", "behavior", "streams"} <= set(meta)
    truth = json.loads((tiny_root / "tiny-B/meta/simulation_neurons.json").read_text())
    unit_ids = np.load(tiny_root / "tiny-B/meta/neurons/unit_ids.npy")
    assert truth["unit_id"] == unit_ids.tolist()
    for column in ("rf_row", "rf_col", "orientation", "complexity", "direction", "threshold"):
        assert len(truth[column]) == len(unit_ids)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a", seed=7, scale=0.05, progress=False)
    second = simulate(tmp_path / "b", seed=7, scale=0.05, progress=False)
    for a, b in zip(first, second, strict=True):
        assert _digest(a) == _digest(b)
    other = tiny(8, 0.05)
    assert [p.video_id.tolist() for p in tiny(7, 0.05)] != [p.video_id.tolist() for p in other]


def test_scale_shrinks_and_grows_tiny() -> None:
    small = tiny(0, 0.25)
    full = tiny(0, 1.0)
    big = tiny(0, 2.0)
    assert [len(p.unit_ids) for p in full] == [80, 100, 120]
    assert [len(p.unit_ids) for p in small] == [20, 25, 30]
    assert [len(p.unit_ids) for p in big] == [160, 200, 240]
    assert [len(p.trials) for p in full] == [54] * 3
    assert all(
        len(s.trials) < len(f.trials) < len(b.trials)
        for s, f, b in zip(small, full, big, strict=True)
    )


def test_sensorium2023_preset_copies_the_real_structure() -> None:
    from sensorium_data.catalog import recordings

    plans = sensorium2023(0, 1.0)
    assert [p.name for p in plans] == [f"sensorium2023-{letter}" for letter in "ABCDEFGHIJ"]
    for plan, rec in zip(plans, recordings("2023"), strict=True):
        trials, neurons = rec.trials(), rec.neurons()
        assert plan.mimics == rec.name and plan.frames == rec.frames
        np.testing.assert_array_equal(plan.trials, trials.index.to_numpy())
        np.testing.assert_array_equal(plan.tiers[plan.trials], trials["tier"].to_numpy())
        np.testing.assert_array_equal(plan.video_id, trials["video_id"].to_numpy())
        np.testing.assert_array_equal(plan.valid_frames, trials["valid_frames"].to_numpy())
        np.testing.assert_array_equal(plan.unit_ids, neurons.index.to_numpy())
        assert len(plan.unit_ids) == rec.n_neurons
        assert set(np.delete(plan.tiers, plan.trials)) <= {"none"}


def test_sensorium2023_scale_keeps_whole_repeat_groups() -> None:
    full = {p.name: p for p in sensorium2023(0, 1.0)}
    for plan in sensorium2023(0, 0.1):
        ref = full[plan.name]
        assert set(plan.trials) < set(ref.trials)
        assert abs(len(plan.unit_ids) - 0.1 * len(ref.unit_ids)) <= 1
        assert set(plan.unit_ids) <= set(ref.unit_ids)
        for tier in TIERS:
            assert (plan.tiers == tier).sum() > 0, (plan.name, tier)
        for tier in set(TIERS) - {"train"}:  # every repeat of a kept video is kept
            kept = plan.video_id[plan.tiers[plan.trials] == tier]
            ref_ids = ref.video_id[ref.tiers[ref.trials] == tier]
            for vid in set(kept):
                assert (kept == vid).sum() == (ref_ids == vid).sum()


def test_sensorium2023_mouse_with_a_long_trial(tmp_path: Path) -> None:
    plan = next(p for p in sensorium2023(0, 1.0) if p.name == "sensorium2023-D")
    long = int(np.argmax(plan.valid_frames))
    # a small copy of mouse D: 30 neurons, a few trials including its 403-frame one
    keep = sorted({0, 1, long})
    tiers = np.full(len(plan.tiers), "none", dtype=object)  # trials left out have no tier
    tiers[plan.trials[keep]] = plan.tiers[plan.trials[keep]]
    small = replace(
        plan,
        neuron_index=plan.neuron_index[:30],
        unit_ids=plan.unit_ids[:30],
        tiers=tiers.astype(str),
        **{name: getattr(plan, name)[keep] for name in _PER_TRIAL},
    )
    out = write_mouse(small, tmp_path / plan.name, seed=0, params={"preset": "test"})
    tree = open_tree(out)
    assert tree.check_shapes()["responses"][0] == (30, 403)
    assert valid_frames(tree.read("videos", int(plan.trials[long]))) == 403
    np.testing.assert_array_equal(tree.trials, plan.trials[keep])


_PER_TRIAL = ("trials", "stimulus_type", "video_id", "valid_frames")


def test_round_trip_through_open_mouse(tiny_root: Path, tmp_path: Path) -> None:
    from sensorium_data.dataset import open_mouse

    ds = open_mouse(tiny_root / "tiny-A", data_dir=tmp_path, progress=False)
    tree = open_tree(tiny_root / "tiny-A")
    np.testing.assert_array_equal(ds.trial.values, tree.trials)
    np.testing.assert_array_equal(ds.stimulus_type.values, tree.trial_labels("stimulus_type"))
    np.testing.assert_array_equal(ds.video_id.values, tree.trial_labels("video_id"))
    trial = int(tree.trials[1])
    for name in ("responses", "rates"):
        np.testing.assert_array_equal(ds[name].sel(trial=trial).values, tree.read(name, trial))


# ------------------------------------------------------------------------- bad input


def test_unknown_preset_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of 'tiny', 'sens"):
        simulate(tmp_path, preset="huge", progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), "big"])
def test_bad_scale(tmp_path: Path, scale: object) -> None:
    with pytest.raises(ValueError, match="scale="):
        simulate(tmp_path, scale=scale, progress=False)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_sensorium2023_cannot_grow(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"scale=2.0 is too large for the sensorium2023 preset"):
        simulate(tmp_path, preset="sensorium2023", scale=2.0, progress=False)


def test_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed=-1 must be a non-negative integer"):
        simulate(tmp_path, seed=-1, progress=False)


def test_existing_recording_needs_overwrite(tmp_path: Path) -> None:
    simulate(tmp_path, scale=0.05, progress=False)
    before = _digest(tmp_path / "tiny-A")
    with pytest.raises(FileExistsError, match="already holds a recording; pass overwrite=True"):
        simulate(tmp_path, scale=0.05, seed=1, progress=False)
    assert _digest(tmp_path / "tiny-A") == before
    (tmp_path / "tiny-A" / "stray.txt").write_text("old")
    simulate(tmp_path, scale=0.05, seed=1, overwrite=True, progress=False)
    assert not (tmp_path / "tiny-A" / "stray.txt").exists()
    assert _digest(tmp_path / "tiny-A") != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-A", "tiny-B", "tiny-C"]


def test_a_folder_that_is_not_a_recording_is_never_removed(tmp_path: Path) -> None:
    (tmp_path / "tiny-B").mkdir()
    (tmp_path / "tiny-B" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match=r"is not a recording .* never removes it"):
        simulate(tmp_path, scale=0.05, overwrite=True, progress=False)
    assert (tmp_path / "tiny-B" / "thesis.tex").read_text() == "precious"
    assert not (tmp_path / "tiny-A").exists()  # nothing written before the check failed
