"""The recordings of SENSORIUM 2022 and 2023: names, ids, urls, counts, per-trial tables.

The catalog is data, shipped with the package (``catalogs/`` in the repository, installed as
``sensorium_data/catalogs``)::

    catalogs/
    ├── sensorium2023.toml                     10 recordings: letter, name, ids, counts, url
    ├── sensorium2022.toml                     7 recordings: name, ids, neuron count, role, url
    └── sensorium2023/
        ├── <name>.trials.csv                  trial, tier, stimulus_type, video_id, valid_frames
        └── <name>.neurons.csv                 unit_id, x, y, z

Nothing is read at import; the first call reads the TOML files once.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from sensorium_data.errors import LIST_MICE, Message

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Competition",
    "Recording",
    "UnknownMouseError",
    "find",
    "list_mice",
    "lookup",
    "recordings",
]

Competition = Literal["2022", "2023"]
COMPETITIONS: tuple[Competition, ...] = get_args(Competition)

ROLES: dict[Competition, tuple[str, ...]] = {
    "2023": ("scored", "released"),
    "2022": ("SENSORIUM", "SENSORIUM+", "pre-training"),
}
NAME_PATTERNS: dict[Competition, str] = {
    "2023": r"dynamic{short}-Video-[0-9a-f]{{32}}",
    "2022": r"static{short}-GrayImageNet-[0-9a-f]{{32}}",
}
# key -> (type, required), per competition; any other key in a catalog file is an error
_COMMON: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "animal_id": (int, True),
    "session": (int, True),
    "scan_idx": (int, True),
    "n_neurons": (int, True),
    "url": (str, True),
    "sha256": (str, False),
}
KEYS: dict[Competition, dict[str, tuple[type, bool]]] = {
    "2023": {
        **_COMMON,
        "letter": (str, True),
        "n_trials": (int, True),
        "frames": (int, True),
        "extracted_bytes": (int, False),
        "fps": (float, True),
        "set": (str, True),
        "ood_responses_url": (str, False),
    },
    "2022": {**_COMMON, "role": (str, True)},
}
TRIAL_DTYPES = {"tier": str, "stimulus_type": str, "video_id": str, "valid_frames": "int64"}
NEURON_DTYPES = {"x": "int64", "y": "int64", "z": "int64"}


class UnknownMouseError(KeyError, ValueError):
    """A mouse name that is not in the catalog.

    Both a ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad argument), so either
    ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # KeyError would print the message within quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Recording:
    """One recording (one mouse, one scan) of a SENSORIUM competition.

    Attributes
    ----------
    name : str
        Folder name, which is also the stem of the zip file,
        e.g. ``"dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"``.
    competition : {"2022", "2023"}
    short_name : str
        ``"<animal_id>-<session>-<scan_idx>"``, e.g. ``"29515-10-12"`` (the 2022 data_key).
    letter : str or None
        ``"A"`` to ``"J"`` for 2023, the short ids the field uses; None for 2022.
    animal_id, session, scan_idx : int
    n_neurons : int
    n_trials : int or None
        Number of trial files (2023); None for 2022, where it is not catalogued.
    frames : int or None
        Padded frames per trial file (2023); None for 2022 (static images).
    role : str
        2023: ``"scored"`` (the final competition scored it; its test-tier responses are
        withheld and ship as zeros) or ``"released"`` (its test-tier responses are released).
        2022: ``"SENSORIUM"``, ``"SENSORIUM+"`` or ``"pre-training"``.
    url : str
        Where the zip is downloaded from.
    sha256 : str or None
        Hash of the zip where the catalog has one (none is published upstream).
    fps : float or None
        Frame rate in Hz (2023); None for 2022.
    ood_responses_url : str or None
        2023 mice A-E only: the same recording with the out-of-distribution test responses
        released as well (a different zip, not a mirror of ``url``; unverified).
    extracted_bytes : int or None
        2023: the size of the extracted folder, computed from the format by
        ``catalogs/sizes.py`` (no size is published); None for 2022, whose trial counts and
        dtypes are not known.

    Examples
    --------
    >>> rec = lookup("F")
    >>> rec.short_name, rec.n_neurons, rec.role
    ('29515-10-12', 7863, 'scored')
    """

    name: str
    competition: Competition
    short_name: str
    letter: str | None
    animal_id: int
    session: int
    scan_idx: int
    n_neurons: int
    n_trials: int | None
    frames: int | None
    role: str
    url: str
    sha256: str | None
    fps: float | None
    ood_responses_url: str | None = None
    extracted_bytes: int | None = None

    def trials(self) -> pd.DataFrame | None:
        """Per-trial table: tier, stimulus type, repeat group and valid length of each trial file.

        Returns
        -------
        pandas.DataFrame or None
            Index ``trial`` (the file index of ``data/*/<trial>.npy``), sorted; columns
            ``tier``, ``stimulus_type``, ``video_id`` (trials that showed the same video share
            it) and ``valid_frames`` (frames before the padding). None for 2022.
            Stimulus types and video ids were derived from the data by a third party; see
            ``catalogs/README.md``.

        Examples
        --------
        >>> trials = lookup("F").trials()
        >>> trials.loc[0].to_dict()  # doctest: +NORMALIZE_WHITESPACE
        {'tier': 'train', 'stimulus_type': 'NaturalVideo', 'video_id': 'v668306',
         'valid_frames': 300}
        >>> int((trials.tier == "oracle").sum())
        58
        """
        return _table(self.name, "trials", "trial", TRIAL_DTYPES)

    def neurons(self) -> pd.DataFrame | None:
        """Per-neuron table: unit id and cortical coordinates.

        Returns
        -------
        pandas.DataFrame or None
            Index ``unit_id`` (``meta/neurons/unit_ids.npy``), in the order of the recording;
            integer columns ``x``, ``y``, ``z`` (``meta/neurons/cell_motor_coordinates.npy``,
            microns). None where the catalog ships no table (2022).

        Examples
        --------
        >>> neurons = lookup("F").neurons()
        >>> len(neurons), neurons.columns.tolist()
        (7863, ['x', 'y', 'z'])
        """
        return _table(self.name, "neurons", "unit_id", NEURON_DTYPES)


def recordings(competition: Competition | None = None) -> list[Recording]:
    """All recordings of one competition, or of both.

    Parameters
    ----------
    competition : {"2022", "2023"} or None
        None (the default) lists both: 2023 in letter order (A-J), then 2022.

    Returns
    -------
    list of Recording

    Raises
    ------
    ValueError
        If ``competition`` is not one of the choices.

    Examples
    --------
    >>> [rec.letter for rec in recordings("2023")]
    ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J']
    >>> sum(rec.n_neurons for rec in recordings("2022"))
    54569
    """
    if competition is None:
        return [rec for comp in ("2023", "2022") for rec in _catalog()[comp]]
    return list(_catalog()[_check_competition(competition)])


def list_mice(competition: Competition | None = None) -> list[str]:
    """Folder names of all recordings: 2023 in letter order, then 2022.

    Any of these, a 2023 letter or a short name can be passed wherever a mouse is asked for.

    Parameters
    ----------
    competition : {"2022", "2023"} or None
        None (the default) lists both.

    Examples
    --------
    >>> list_mice("2023")[5]
    'dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20'
    >>> len(list_mice())
    17
    """
    return [rec.name for rec in recordings(competition)]


def find(mouse: str) -> Recording | None:
    """The recording a mouse name refers to, or None.

    Parameters
    ----------
    mouse : str
        A 2023 letter (``"F"``, any case), a short name (``"29515-10-12"``,
        ``"26872-17-20"``) or a folder name. A folder name may end with ``/``, ``.zip`` or
        ``.zarr`` and sit in a path: ``"downloads/<name>.zip"`` is the recording ``<name>``.

    Examples
    --------
    >>> find("f").name
    'dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20'
    >>> find("26872-17-20").role
    'SENSORIUM'
    >>> find("K") is None
    True
    """
    if not isinstance(mouse, str):
        msg = f"a mouse is named by a string, got {type(mouse).__name__} {mouse!r}"
        raise TypeError(msg)
    index = _index()
    key = mouse.strip()
    if key in index:
        return index[key]
    if len(key) == 1 and key.upper() in index:
        return index[key.upper()]
    stem = re.sub(r"\.(zip|zarr)$", "", key.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
    rec = index.get(stem)
    # only folder names, not letters or short names, are recognised inside a path
    return rec if rec is not None and rec.name == stem else None


def resolve_mouse(mouse: str, names: Iterable[str]) -> str | None:
    """The name among ``names`` that ``mouse`` refers to, or None: ``mouse`` itself if it is
    one of them, else the name of the catalogued recording it names (a letter, a short name;
    see :func:`find`) if that is one of them.

    The one resolution of a user's mouse against a set of recordings (datasets given, a run's
    mice); callers word their own error when it is None.

    Examples
    --------
    >>> names = ["dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20", "sim-a"]
    >>> resolve_mouse("F", names)
    'dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20'
    >>> resolve_mouse("sim-a", names)
    'sim-a'
    >>> resolve_mouse("G", names) is None  # a catalogued mouse, but not one of names
    True
    """
    names = list(names)
    if mouse in names:
        return mouse
    rec = find(mouse)
    return rec.name if rec is not None and rec.name in names else None


def short_name(name: str) -> str:
    """A 2023 recording's name without its prefix and hash, for tables; others unchanged.

    Examples
    --------
    >>> short_name("dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20")
    '29515-10-12'
    >>> short_name("sim-a")
    'sim-a'
    """
    if name.startswith("dynamic") and "-Video-" in name:
        return name.removeprefix("dynamic").split("-Video-")[0]
    return name


def lookup(mouse: str) -> Recording:
    """The recording a mouse name refers to; like :func:`find`, but raises when unknown.

    Parameters
    ----------
    mouse : str
        A 2023 letter, a short name or a folder name (see :func:`find`).

    Raises
    ------
    UnknownMouseError
        If the name is not in the catalog. The message lists the valid names.

    Examples
    --------
    >>> lookup("29515-10-12").letter
    'F'
    >>> lookup("K")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sensorium_data.catalog.UnknownMouseError: unknown mouse 'K'; ...
    """
    rec = find(mouse)
    if rec is not None:
        return rec
    letters = [r.letter for r in recordings("2023")]
    hint = ""
    if "/" in mouse or "\\" in mouse or mouse.endswith((".zip", ".zarr")):
        hint = " (if you meant a path, pass an existing path)"
    msg = Message(
        f"unknown mouse {mouse!r}{hint}; known: letters {letters[0]}..{letters[-1]} (2023), "
        f"short names {', '.join(r.short_name for r in recordings())}, or a folder name such as "
        f"{recordings('2023')[-1].name}; see ", LIST_MICE,
    )
    raise UnknownMouseError(msg)


def _check_competition(competition: object) -> Competition:
    # an int is what was meant just as well as the string
    for choice in COMPETITIONS:
        if competition == choice or (type(competition) is int and str(competition) == choice):
            return choice
    msg = (
        f"unknown competition {competition!r}; choose one of "
        f"{', '.join(repr(c) for c in COMPETITIONS)} or None (both)"
    )
    raise ValueError(msg)


def _catalog_root() -> Traversable:
    """The catalogs folder: inside the installed package, else beside it in a checkout."""
    try:
        packaged = resources.files("sensorium_data").joinpath("catalogs")
        if packaged.joinpath("sensorium2023.toml").is_file():
            return packaged
    except (ModuleNotFoundError, NotADirectoryError):
        pass
    return Path(__file__).resolve().parents[1] / "catalogs"


@functools.cache
def _catalog() -> dict[Competition, tuple[Recording, ...]]:
    return _load(_catalog_root())


@functools.cache
def _index() -> dict[str, Recording]:
    index: dict[str, Recording] = {}
    for rec in recordings():
        for key in (rec.name, rec.short_name, rec.letter):
            if key is None:
                continue
            if key in index:
                msg = f"catalog error: {key!r} names both {index[key].name} and {rec.name}"
                raise RuntimeError(msg)
            index[key] = rec
    return index


def _load(root: Traversable) -> dict[Competition, tuple[Recording, ...]]:
    """Read and check ``sensorium<competition>.toml`` of both competitions under ``root``."""
    catalog: dict[Competition, tuple[Recording, ...]] = {}
    for competition in COMPETITIONS:
        source = root.joinpath(f"sensorium{competition}.toml")
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        extra = sorted(set(data) - {"competition", "recording"})
        if data.get("competition") != competition or extra:
            msg = (
                f"catalog error in {source}: expected competition = {competition!r} and "
                f"[[recording]] tables only, got competition = {data.get('competition')!r}, "
                f"other keys {extra}"
            )
            raise ValueError(msg)
        catalog[competition] = tuple(
            _recording(entry, competition, f"{source}, recording {i}")
            for i, entry in enumerate(data.get("recording", []))
        )
    return catalog


def _recording(entry: dict[str, Any], competition: Competition, where: str) -> Recording:
    keys = KEYS[competition]
    unknown = sorted(set(entry) - set(keys))
    missing = sorted(k for k, (_, required) in keys.items() if required and k not in entry)
    if unknown or missing:
        msg = (
            f"catalog error in {where}: unknown keys {unknown}, missing keys {missing}; "
            f"valid keys: {', '.join(keys)}"
        )
        raise ValueError(msg)
    for key, value in entry.items():
        kind = keys[key][0]
        ok = isinstance(value, (int, float) if kind is float else kind)
        if not ok or (kind is int and isinstance(value, bool)):
            msg = f"catalog error in {where}: {key} = {value!r} is not of type {kind.__name__}"
            raise ValueError(msg)
    sha256 = entry.get("sha256")
    if sha256 is not None and not re.fullmatch("[0-9a-f]{64}", sha256):
        msg = f"catalog error in {where}: sha256 = {sha256!r} is not 64 lowercase hex digits"
        raise ValueError(msg)
    role = entry["set"] if competition == "2023" else entry["role"]
    short_name = f"{entry['animal_id']}-{entry['session']}-{entry['scan_idx']}"
    pattern = NAME_PATTERNS[competition].format(short=re.escape(short_name))
    if role not in ROLES[competition] or not re.fullmatch(pattern, entry["name"]):
        msg = (
            f"catalog error in {where}: role/set {role!r} must be one of {ROLES[competition]} "
            f"and name {entry['name']!r} must match {pattern!r}"
        )
        raise ValueError(msg)
    return Recording(
        name=entry["name"],
        competition=competition,
        short_name=short_name,
        letter=entry.get("letter"),
        animal_id=entry["animal_id"],
        session=entry["session"],
        scan_idx=entry["scan_idx"],
        n_neurons=entry["n_neurons"],
        n_trials=entry.get("n_trials"),
        frames=entry.get("frames"),
        role=role,
        url=entry["url"],
        sha256=sha256,
        fps=float(entry["fps"]) if "fps" in entry else None,
        ood_responses_url=entry.get("ood_responses_url"),
        extracted_bytes=entry.get("extracted_bytes"),
    )


def _table(
    name: str, kind: Literal["trials", "neurons"], index: str, dtypes: dict[str, Any]
) -> pd.DataFrame | None:
    table = _read_table(name, kind, index, tuple(dtypes.items()))
    return None if table is None else table.copy()


@functools.cache
def _read_table(
    name: str, kind: str, index: str, dtypes: tuple[tuple[str, Any], ...]
) -> pd.DataFrame | None:
    import pandas as pd

    source = _catalog_root().joinpath("sensorium2023").joinpath(f"{name}.{kind}.csv")
    if not source.is_file():
        return None
    with source.open("rb") as f:
        table = pd.read_csv(f, dtype={index: "int64", **dict(dtypes)})
    return table.set_index(index)
