"""The catalogs under catalogs/ and their reader, sensorium_data.catalog.

All tests but the two marked with ``needs_reference`` use only what ships under catalogs/;
those two compare with the reference tables (../shared/reference/sensorium2023 beside the
repository) and skip where they are absent.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from sensorium_data import catalog
from sensorium_data.catalog import (
    UnknownMouseError,
    find,
    list_mice,
    lookup,
    recordings,
    resolve_mouse,
    short_name,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "sensorium2023"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference tables not found at {REFERENCE}"
)

LETTERS = {
    "A": "dynamic29156-11-10-Video-8744edeac3b4d1ce16b680916b5267ce",
    "B": "dynamic29228-2-10-Video-8744edeac3b4d1ce16b680916b5267ce",
    "C": "dynamic29234-6-9-Video-8744edeac3b4d1ce16b680916b5267ce",
    "D": "dynamic29513-3-5-Video-8744edeac3b4d1ce16b680916b5267ce",
    "E": "dynamic29514-2-9-Video-8744edeac3b4d1ce16b680916b5267ce",
    "F": "dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20",
    "G": "dynamic29623-4-9-Video-9b4f6a1a067fe51e15306b9628efea20",
    "H": "dynamic29647-19-8-Video-9b4f6a1a067fe51e15306b9628efea20",
    "I": "dynamic29712-5-9-Video-9b4f6a1a067fe51e15306b9628efea20",
    "J": "dynamic29755-2-8-Video-9b4f6a1a067fe51e15306b9628efea20",
}
TIERS = {
    "train",
    "oracle",
    "live_test_main",
    "live_test_bonus",
    "final_test_main",
    "final_test_bonus",
}
MAIN_TIERS = ["train", "oracle", "live_test_main", "final_test_main"]
STIMULUS_TYPES = {
    "NaturalVideo",
    "NaturalImages",
    "Gabor",
    "PinkNoise",
    "RandomDots",
    "GaussianDot",
}
ROLES_2022 = {
    "26872-17-20": "SENSORIUM",
    "27204-5-13": "SENSORIUM+",
    "21067-10-18": "pre-training",
    "22846-10-16": "pre-training",
    "23343-5-17": "pre-training",
    "23656-14-22": "pre-training",
    "23964-4-22": "pre-training",
}


def _builder(script: str = "build") -> ModuleType:
    # run the script's source rather than import it: an import would leave a __pycache__
    # folder inside catalogs/, which the wheel ships
    path = REPO / "catalogs" / f"{script}.py"
    module = ModuleType(f"catalogs_{script}")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


# --- against the reference tables --------------------------------------------------------------


@needs_reference
def test_catalog_agrees_with_reference_recordings() -> None:
    folders = sorted(p for p in REFERENCE.iterdir() if (p / "recording.json").is_file())
    assert [p.name for p in folders] == sorted(list_mice("2023"))
    for folder in folders:
        meta = json.loads((folder / "recording.json").read_text())
        rec = lookup(folder.name)
        assert (rec.animal_id, rec.session, rec.scan_idx) == (
            int(meta["animal_id"]),
            int(meta["session"]),
            int(meta["scan_idx"]),
        )
        assert rec.n_neurons == meta["n_neurons"]
        assert rec.n_trials == meta["n_trials"]
        assert rec.frames == meta["samples_per_trial"]
        assert rec.fps == meta["sampling_freq"]


@needs_reference
def test_builder_reproduces_shipped_tables(tmp_path: Path) -> None:
    build = _builder()
    names = build.build_tables(REFERENCE, tmp_path)
    assert sorted(names) == sorted(list_mice("2023"))
    shipped = REPO / "catalogs" / "sensorium2023"
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (shipped / path.name).read_bytes(), path.name
    assert len(list(tmp_path.iterdir())) == len(list(shipped.glob("*.csv"))) == 20
    assert build.check_toml(REFERENCE, REPO / "catalogs" / "sensorium2023.toml") == []


# --- 2023, from the shipped catalog only -------------------------------------------------------


def _npy_bytes(shape: tuple[int, ...], dtype: str) -> int:
    buffer = io.BytesIO()  # numpy's own header, not the script's formula
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return len(buffer.getvalue()) + math.prod(shape) * np.dtype(dtype).itemsize


def test_the_extracted_size_is_recomputed_from_the_format() -> None:
    rec = lookup("F")  # F-J float64, 711 trial files of 324 padded frames, 7863 neurons
    trial = [(36, 64, 324), (7863, 324), (2, 324), (2, 324)]
    per_trial = sum(_npy_bytes(shape, "<f8") for shape in trial)
    meta = _npy_bytes((7863,), "<i8") + _npy_bytes((7863, 3), "<f8") + _npy_bytes((711,), "<U16")
    assert rec.extracted_bytes == (711 + 4) * per_trial + meta == 18_850_374_464
    a = lookup("A")  # A-E float32; tiers.npy also lists the 20 trials of tier none
    assert a.extracted_bytes == (720 + 4) * sum(
        _npy_bytes(s, "<f4") for s in [(36, 64, 324), (7440, 324), (2, 324), (2, 324)]
    ) + _npy_bytes((7440,), "<i8") + _npy_bytes((7440, 3), "<f8") + _npy_bytes((740,), "<U16")
    assert lookup("26872-17-20").extracted_bytes is None  # 2022: counts and dtypes not known


def test_the_shipped_sizes_are_the_scripts() -> None:
    sizes = _builder("sizes")
    assert sizes.main(["--check"]) == 0
    total = sum(sizes.sizes().values())
    assert 148e9 < total < 151e9  # lRomul/sensorium's README: "148 GB" for the ten, extracted


def test_2023_has_ten_recordings_and_78853_neurons() -> None:
    recs = recordings("2023")
    assert [rec.letter for rec in recs] == list("ABCDEFGHIJ")
    assert sum(rec.n_neurons for rec in recs) == 78_853
    assert all(rec.fps == 30.0 and rec.competition == "2023" for rec in recs)


@pytest.mark.parametrize(("letter", "name"), LETTERS.items())
def test_letters_map_to_folders(letter: str, name: str) -> None:
    rec = lookup(letter)
    assert rec.name == name
    assert lookup(letter.lower()) is rec
    assert lookup(name) is rec
    assert lookup(rec.short_name) is rec
    assert name.startswith(f"dynamic{rec.short_name}-Video-")


def test_sets_and_urls() -> None:
    for rec in recordings("2023"):
        scored = rec.letter in {"F", "G", "H", "I", "J"}
        assert rec.role == ("scored" if scored else "released")
        repo = "sensorium_2023_dataset" if scored else "Sensorium2023Data"
        assert rec.url == f"https://gin.g-node.org/pollytur/{repo}/raw/master/{rec.name}.zip"
        assert (rec.ood_responses_url is None) == scored
        assert rec.sha256 is None


@pytest.mark.parametrize("letter", list(LETTERS))
def test_tables_agree_with_toml(letter: str) -> None:
    rec = lookup(letter)
    trials, neurons = rec.trials(), rec.neurons()
    assert trials is not None and neurons is not None
    assert len(trials) == rec.n_trials
    assert trials.index.name == "trial"
    assert trials.index.is_unique and trials.index.is_monotonic_increasing
    assert trials.columns.tolist() == ["tier", "stimulus_type", "video_id", "valid_frames"]
    assert trials.valid_frames.max() == rec.frames
    assert len(neurons) == rec.n_neurons
    assert neurons.index.name == "unit_id"
    assert neurons.index.is_unique and neurons.index.is_monotonic_increasing
    assert neurons.columns.tolist() == ["x", "y", "z"]
    assert all(str(dtype) == "int64" for dtype in neurons.dtypes)


@pytest.mark.parametrize("letter", list(LETTERS))
def test_trial_labels(letter: str) -> None:
    trials = lookup(letter).trials()
    assert trials is not None
    assert set(trials.tier) == TIERS
    assert set(trials.stimulus_type) <= STIMULUS_TYPES
    main = trials[trials.tier.isin(MAIN_TIERS)]
    assert (main.stimulus_type == "NaturalVideo").all()
    assert not (trials[~trials.tier.isin(MAIN_TIERS)].stimulus_type == "NaturalVideo").any()
    # train videos are shown once; the repeated tiers show 6 videos about 10 times each
    assert trials[trials.tier == "train"].video_id.is_unique
    for tier in ["oracle", "live_test_main", "final_test_main"]:
        assert trials[trials.tier == tier].video_id.nunique() == 6


def test_tier_counts_of_mouse_f() -> None:
    trials = lookup("F").trials()
    assert trials is not None
    assert trials.tier.value_counts().to_dict() == {
        "train": 348,
        "oracle": 58,
        "live_test_main": 56,
        "final_test_main": 57,
        "live_test_bonus": 58,
        "final_test_bonus": 134,
    }
    bonus = trials[trials.tier.str.endswith("bonus")]
    assert bonus.groupby(["tier", "stimulus_type"]).size().to_dict() == {
        ("final_test_bonus", "GaussianDot"): 58,
        ("final_test_bonus", "RandomDots"): 76,
        ("live_test_bonus", "PinkNoise"): 58,
    }


def test_tables_are_copies() -> None:
    trials = lookup("A").trials()
    assert trials is not None
    trials["tier"] = "changed"
    again = lookup("A").trials()
    assert again is not None and "changed" not in set(again.tier)


# --- 2022 ---------------------------------------------------------------------------------------


def test_2022_recordings() -> None:
    recs = recordings("2022")
    assert len(recs) == 7
    assert sum(rec.n_neurons for rec in recs) == 54_569
    assert {rec.short_name: rec.role for rec in recs} == ROLES_2022
    for rec in recs:
        assert rec.name == f"static{rec.short_name}-GrayImageNet-94c6ff995dac583098847cfecd43e7b6"
        assert rec.url == f"https://gin.g-node.org/cajal/Sensorium2022/raw/master/{rec.name}.zip"
        assert rec.letter is None and rec.n_trials is None and rec.frames is None
        assert rec.fps is None
        assert rec.trials() is None and rec.neurons() is None
        assert lookup(rec.short_name) is rec and lookup(rec.name) is rec
    assert lookup("26872-17-20").n_neurons == 7776


# --- listing and lookup -------------------------------------------------------------------------


def test_list_mice_order() -> None:
    assert list_mice("2023") == list(LETTERS.values())
    assert list_mice() == list_mice("2023") + list_mice("2022")
    assert list_mice("2022")[:2] == [
        "static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6",
        "static27204-5-13-GrayImageNet-94c6ff995dac583098847cfecd43e7b6",
    ]
    assert len(set(list_mice())) == 17


def test_competition_accepts_int() -> None:
    assert recordings(2023) == recordings("2023")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        LETTERS["F"] + "/",
        LETTERS["F"] + ".zip",
        LETTERS["F"] + ".zarr",
        LETTERS["F"] + ".zarr/",
        f"/data/sensorium/downloads/{LETTERS['F']}.zip",
        f"  {LETTERS['F']}  ",
        "29515-10-12",
        "f",
    ],
)
def test_find_recognises_forms_of_a_name(value: str) -> None:
    assert find(value) is lookup("F")


@pytest.mark.parametrize("value", ["K", "F.zip", "29515-10-12.zarr", "dynamic29515", "", "FF"])
def test_find_returns_none(value: str) -> None:
    assert find(value) is None


def test_unknown_mouse_error() -> None:
    with pytest.raises(
        UnknownMouseError,
        match=r"^unknown mouse 'K'; known: letters A\.\.J \(2023\), short names 29156-11-10, .*"
        r"29515-10-12, .*26872-17-20, .*folder name such as dynamic.*"
        r"see sensorium_data\.list_mice\(\)$",
    ) as info:
        lookup("K")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "pass an existing path" not in str(info.value)


@pytest.mark.parametrize("value", ["data/K", "mouse.zip", "mouse.zarr", r"C:\data\mouse"])
def test_unknown_mouse_that_looks_like_a_path(value: str) -> None:
    with pytest.raises(UnknownMouseError, match=r"\(if you meant a path, pass an existing path\)"):
        lookup(value)


def test_mouse_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="a mouse is named by a string, got int 6"):
        find(6)  # type: ignore[arg-type]


@pytest.mark.parametrize("function", [recordings, list_mice])
@pytest.mark.parametrize("value", ["2024", "sensorium2023", 2021])
def test_bad_competition(function: object, value: object) -> None:
    with pytest.raises(
        ValueError, match=r"unknown competition .*; choose one of '2022', '2023' or None \(both\)"
    ):
        function(value)  # type: ignore[operator]


# --- the catalog files themselves ---------------------------------------------------------------


def test_catalog_root_holds_the_files() -> None:
    root = catalog._catalog_root()
    for name in ["sensorium2023.toml", "sensorium2022.toml", "README.md", "LICENSE-reference.txt"]:
        assert root.joinpath(name).is_file(), name


def _write_catalog(root: Path, extra_2023: str = "", competition_2022: str = "2022") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sensorium2023.toml").write_text(
        'competition = "2023"\n[[recording]]\nletter = "A"\n'
        'name = "dynamic1-2-3-Video-0123456789abcdef0123456789abcdef"\n'
        "animal_id = 1\nsession = 2\nscan_idx = 3\nn_neurons = 4\nn_trials = 5\nframes = 6\n"
        'fps = 30\nset = "scored"\nurl = "https://example.org/a.zip"\n' + extra_2023
    )
    (root / "sensorium2022.toml").write_text(f'competition = "{competition_2022}"\n')
    return root


def test_loader_reads_a_minimal_catalog(tmp_path: Path) -> None:
    loaded = catalog._load(_write_catalog(tmp_path))
    (rec,) = loaded["2023"]
    assert (rec.short_name, rec.letter, rec.n_neurons, rec.fps) == ("1-2-3", "A", 4, 30.0)
    assert loaded["2022"] == ()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('colour = "blue"\n', r"unknown keys \['colour'\], missing keys \[\]"),
        ('sha256 = "abc"\n', r"sha256 = 'abc' is not 64 lowercase hex digits"),
    ],
)
def test_loader_rejects_bad_entries(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        catalog._load(_write_catalog(tmp_path, extra))


def test_loader_rejects_wrong_competition(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"expected competition = '2022'.*got competition = '2023'"
    ):
        catalog._load(_write_catalog(tmp_path, competition_2022="2023"))


def test_resolve_mouse_is_a_name_or_a_catalog_key_among_the_names():
    f = lookup("F")
    names = [f.name, "sim-a"]
    assert resolve_mouse("F", names) == resolve_mouse("29515-10-12", names) == f.name
    assert resolve_mouse("f", names) == f.name
    assert resolve_mouse("sim-a", names) == "sim-a"
    assert resolve_mouse("G", names) is None  # catalogued, but not among the names
    assert resolve_mouse("nobody", names) is None
    assert short_name(f.name) == f.short_name
    assert short_name("sim-a") == "sim-a"
