"""Predictions as files: written, read back, cached in a run directory, compared.

A run's whole-trial predictions are cached under ``RUN/predictions/<key>/<tier>.zarr`` (one
group per recording), where ``<key>`` is a SHA-256 of what they depend on: the bytes of
``best.pt``, each recording's store path, source fingerprint, schema version and metadata
modification time, and the device type (CPU and CUDA round differently). The trainer's final
scoring fills the cache; ``sensorium evaluate | compare | plot | predict | submit`` read it,
and predict only the tiers it lacks. A new ``best.pt`` or a changed store gives another key,
so an entry that no longer fits is never read (the log says it is ignored). Entries are
written to a temporary name and renamed, so a half-written entry is never read either.
Ensembles (several runs) and recordings without a store (built in memory) are not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

log = logging.getLogger(__name__)

CACHE = "predictions"  # the cache folder inside a run directory
_EXISTS = "{out} exists; pass a new path (predictions are never written over)."


def write_predictions(predictions: Mapping[str, xr.DataArray],
                      path: str | os.PathLike[str]) -> Path:
    """Write predictions, one group per mouse, to a zarr store (``.zarr``) or a netCDF file
    (``.nc``, needs h5netcdf or netCDF4); a path that exists is an error.

    Examples
    --------
    >>> import sensorium_models as sm
    >>> p = sm.predict(run, datasets, tiers="oracle")
    >>> write_predictions(p, "oracle.zarr")
    PosixPath('oracle.zarr')
    """
    out = Path(path)
    if out.exists():
        raise FileExistsError(_EXISTS.format(out=out))
    if out.suffix == ".nc":
        engine = _netcdf_engine()
        for i, (mouse, values) in enumerate(predictions.items()):
            values.to_dataset().to_netcdf(out, group=mouse, mode="w" if i == 0 else "a",
                                          engine=engine)
    elif out.suffix == ".zarr":
        _write_zarr(predictions, out)
    else:
        msg = f"{out}: end the path in .zarr (a zarr store) or .nc (netCDF, needs h5netcdf)."
        raise ValueError(msg)
    return out


def read_predictions(path: str | os.PathLike[str]) -> dict[str, xr.DataArray]:
    """The predictions :func:`write_predictions` wrote: mouse -> (trial, neuron, frame),
    loaded into memory.

    Examples
    --------
    >>> import sensorium_models as sm
    >>> path = write_predictions(sm.predict(run, datasets, tiers="oracle"), "oracle.zarr")
    >>> p = read_predictions(path)
    >>> sorted(p), p["tiny-A"].dims
    (['tiny-A', 'tiny-B', 'tiny-C'], ('trial', 'neuron', 'frame'))
    >>> table = sm.evaluate(p, datasets)
    """
    import xarray as xr

    source = Path(path)
    if not source.exists():
        msg = (f"{source} does not exist; pass a file written by write_predictions (sensorium "
               "predict).")
        raise FileNotFoundError(msg)
    if source.suffix == ".nc":
        groups = xr.open_groups(source, engine=_netcdf_engine())
        names = [g.strip("/") for g in groups if g.strip("/")]
        return {m: groups[f"/{m}"].to_dataset()["predictions"].load() for m in names}
    if source.suffix != ".zarr":
        msg = f"{source}: a predictions file ends in .zarr or .nc (written by write_predictions)."
        raise ValueError(msg)
    import zarr

    from sensorium_data.store.layout import quiet_zarr

    with quiet_zarr():
        names = sorted(zarr.open_group(source, mode="r").group_keys())
        out = {}
        for mouse in names:
            with xr.open_zarr(source, group=mouse, consolidated=False) as ds:
                if "predictions" not in ds:
                    msg = (f"{source}, group {mouse}: no `predictions` array; not a file "
                           "written by write_predictions.")
                    raise ValueError(msg)
                out[mouse] = ds["predictions"].load()
    return out


def _write_zarr(predictions: Mapping[str, xr.DataArray], out: Path) -> None:
    from sensorium_data.store.layout import quiet_zarr

    with quiet_zarr():
        for mouse, values in predictions.items():
            values.to_dataset().to_zarr(out, group=mouse, mode="w", consolidated=False)


def _netcdf_engine() -> Literal["h5netcdf", "netcdf4"]:
    try:
        import h5netcdf  # noqa: F401

        return "h5netcdf"
    except ImportError:
        pass
    try:
        import netCDF4  # noqa: F401

        return "netcdf4"
    except ImportError:
        pass
    msg = ("netCDF with one group per mouse needs h5netcdf or netCDF4 (pip install h5netcdf); "
           "or use a .zarr store.")
    raise ImportError(msg)


def cache_key(run: str | os.PathLike[str], datasets: Mapping[str, xr.Dataset],
              device_type: str) -> str | None:
    """The cache key of ``run``'s best model on ``datasets`` (name -> Dataset) on a device
    of ``device_type`` (``"cpu"``, ``"cuda"``); None when a recording has no store."""
    parts: dict[str, Any] = {"device": device_type, "recordings": {}, "version": _version()}
    for name, ds in sorted(datasets.items()):
        store = ds.attrs.get("store")
        if store is None or "://" in str(store):  # in memory, or remote (no mtime to check)
            return None
        metadata = Path(store) / "zarr.json"
        parts["recordings"][name] = {
            "store": str(Path(store).resolve()),
            "fingerprint": ds.attrs.get("source_fingerprint"),
            "schema": ds.attrs.get("schema_version"),
            "mtime_ns": metadata.stat().st_mtime_ns if metadata.exists() else None,
            # a selection of the recording (ds.isel(...)) keeps its attributes: its trials,
            # neurons and tiers tell it apart from the whole
            "selection": _digest(ds["trial"].values, ds["neuron"].values, ds["tier"].values),
        }
    digest = hashlib.sha256()
    with (Path(run) / "best.pt").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    parts["checkpoint"] = digest.hexdigest()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.asarray(a).astype(str).tobytes())
    return digest.hexdigest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sensorium")
    except PackageNotFoundError:
        return "unknown"


def cached_tiers(entry: Path) -> set[str]:
    """The tiers an entry holds (finished ones only; temporary names are not tiers)."""
    if not entry.is_dir():
        return set()
    return {p.name.removesuffix(".zarr") for p in entry.glob("*.zarr")}


def read_cached(entry: Path, tiers: Sequence[str]) -> dict[str, dict[str, xr.DataArray]] | None:
    """tier -> mouse -> predictions from ``entry``; None (logged) if a file is unreadable."""
    try:
        return {tier: read_predictions(entry / f"{tier}.zarr") for tier in tiers}
    except Exception as e:  # a damaged entry: removed, predicted again and written anew
        log.warning("cached predictions in %s cannot be read (%s); predicting again", entry, e)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def write_cached(entry: Path, by_tier: Mapping[str, Mapping[str, xr.DataArray]]) -> None:
    """Write each tier's predictions to ``entry/<tier>.zarr``: a temporary name, then a
    rename. A run directory that cannot be written to is logged, not an error."""
    for tier, predictions in by_tier.items():
        final = entry / f"{tier}.zarr"
        partial = entry / f".{tier}.zarr.tmp-{os.getpid()}"
        try:
            entry.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            _write_zarr(predictions, partial)
            if final.exists():  # written meanwhile by another process: the same values
                shutil.rmtree(partial)
            else:
                partial.rename(final)
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            log.warning("predictions not cached in %s (%s)", entry, e)
            return


def by_tier(predictions: Mapping[str, xr.DataArray],
            tiers: Sequence[str]) -> dict[str, dict[str, xr.DataArray]]:
    """tier -> mouse -> the trials of that tier (mice without trials of it left out)."""
    out: dict[str, dict[str, xr.DataArray]] = {t: {} for t in tiers}
    for mouse, values in predictions.items():
        labels = values["tier"].values.astype(str)
        for tier in tiers:
            if (labels == tier).any():
                out[tier][mouse] = values.isel(trial=np.flatnonzero(labels == tier))
    return out


def joined(datasets: Mapping[str, xr.Dataset],
           by_tier: Mapping[str, Mapping[str, xr.DataArray]]) -> dict[str, xr.DataArray]:
    """mouse -> the tiers' trials together, in the recording's trial order (as predict
    returns them)."""
    import pandas as pd
    import xarray as xr

    out: dict[str, xr.DataArray] = {}
    for mouse, ds in datasets.items():
        pieces = [t[mouse] for t in by_tier.values() if mouse in t]
        if not pieces:
            continue
        values = pieces[0] if len(pieces) == 1 else xr.concat(pieces, dim="trial")
        order = np.argsort(pd.Index(ds["trial"].values).get_indexer(values["trial"].values),
                           kind="stable")
        out[mouse] = values.isel(trial=order)
    return out


def ignore_stale(cache: Path, key: str) -> None:
    """Log the entries of ``cache`` made for another checkpoint or other recordings."""
    if not cache.is_dir():
        return
    stale = sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name != key)
    if stale:
        log.info("ignoring %d cached prediction set(s) in %s made for another best.pt, other "
                 "recordings or another device (%s); delete them to free the space",
                 len(stale), cache, ", ".join(stale))


def predict_cached(run: str | os.PathLike[str], datasets: Any, *,
                   tiers: str | Sequence[str] | None = None, device: str = "auto",
                   batch_size: int = 8, progress: bool = False,
                   cache: bool = True) -> dict[str, xr.DataArray]:
    """:func:`sensorium_models.predict` of one run, read from its cache where it holds the
    tiers, the rest predicted and added to it; ``cache=False`` predicts everything and
    leaves the cache as it is.

    Examples
    --------
    >>> p = predict_cached(run, datasets, tiers="oracle")
    >>> again = predict_cached(run, datasets, tiers="oracle")  # read back, not run
    >>> again["tiny-A"].equals(p["tiny-A"])
    True
    """
    from sensorium_models.scoring_inputs import check_tiers, datasets_by_name
    from sensorium_models.training.predict import predict, resolve_device, wanted_tiers

    recs = datasets_by_name(datasets)
    check_tiers(recs, tiers)
    key = cache_key(run, recs, resolve_device(device).type) if cache else None
    if key is None:
        if cache:
            log.info("recordings without a store: predictions not cached")
        return predict(run, recs, tiers=tiers, device=device, batch_size=batch_size,
                       progress=progress)
    folder = Path(run) / CACHE
    ignore_stale(folder, key)
    entry = folder / key
    wanted = sorted({t for ds in recs.values() for t in wanted_tiers(ds, tiers)})
    held = cached_tiers(entry)
    found = read_cached(entry, [t for t in wanted if t in held]) or {}
    missing = [t for t in wanted if t not in found]
    if missing:
        new = by_tier(predict(run, recs, tiers=missing, device=device, batch_size=batch_size,
                              progress=progress), missing)
        write_cached(entry, new)
        found.update(new)
    else:
        log.info("predictions of %s read from %s", ", ".join(wanted), entry)
    return joined(recs, {t: found[t] for t in wanted})


def fill_cache(run: str | os.PathLike[str], datasets: Mapping[str, xr.Dataset],
               predictions: Mapping[str, xr.DataArray], device_type: str) -> None:
    """Cache predictions of ``run``'s best model made elsewhere (the trainer's scoring)."""
    key = cache_key(run, datasets, device_type)
    if key is None:
        return
    tiers = sorted({str(t) for v in predictions.values() for t in v["tier"].values})
    write_cached(Path(run) / CACHE / key, by_tier(predictions, tiers))


def compare(runs: Sequence[str | os.PathLike[str]], *, tiers: Sequence[str] | None = None,
            scale: Literal["official", "raw"] = "official",
            data_dir: str | os.PathLike[str] | None = None, device: str = "auto",
            batch_size: int = 8, progress: bool = False,
            cache: bool = True, scheduler: str | None = None
            ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The leaderboard tables of several runs side by side, each scored on its own
    recordings; returns the table and each run's recordings (by the runs' labels).
    ``scheduler``: score the runs on that dask cluster, one task per run
    (:func:`sensorium_models.evaluate_runs`; no prediction cache there).

    Examples
    --------
    >>> table, mice = compare([run], tiers=["oracle"])  # more runs: more columns
    >>> mice
    {'ln': ['tiny-A', 'tiny-B', 'tiny-C']}
    """
    from sensorium_models.leaderboard import evaluate
    from sensorium_models.scoring_inputs import scored_tiers
    from sensorium_models.tables import side_by_side
    from sensorium_models.training.data import open_run_mice

    labels = run_labels(runs)
    if len(set(labels)) < len(labels):
        msg = f"a run is named twice: {', '.join(map(str, runs))}; compare each run once."
        raise ValueError(msg)
    tables, mice = {}, {}
    if scheduler is not None:
        from sensorium_models.scoring import evaluate_runs

        scored = evaluate_runs(runs, tiers=tiers, scale=scale, scheduler=scheduler,
                               data_dir=data_dir, batch_size=batch_size, device=device)
    for run, label in zip(runs, labels, strict=True):
        datasets = open_run_mice(run, data_dir)
        mice[label] = sorted(str(ds.attrs.get("mouse", m)) for m, ds in datasets.items())
        if scheduler is not None:
            tables[label] = scored[str(run)]
            continue
        predictions = predict_cached(run, datasets, tiers=tiers or scored_tiers(datasets),
                                     device=device, batch_size=batch_size, progress=progress,
                                     cache=cache)
        tables[label] = evaluate(predictions, datasets, scale=scale)
    return side_by_side(tables), mice


def run_labels(runs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Short names of runs for a table: the folder names, or the paths where two share one."""
    names = [Path(r).name or str(r) for r in runs]
    if len(set(names)) == len(names):
        return names
    return [str(Path(r)) for r in runs]
