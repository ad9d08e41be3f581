"""Work split over a dask.distributed cluster: one task per recording (conversion) or per run
(evaluation, :func:`sensorium_models.evaluate_runs`).

Without a client everything runs here, one item after another, as before; with a
:class:`distributed.Client` (or a scheduler address, ``--scheduler tcp://host:8786``) each
item is a task on a worker. A conversion writes its store under a temporary name and renames
it (or, at a URL, uploads its root metadata last) only when it is complete, so a worker that
dies mid-conversion leaves no store that opens; the cluster then retries the task elsewhere
(``retries``) or the call fails naming the recording.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sensorium_data.errors import ClusterError, Fix, Message

log = logging.getLogger(__name__)

T = TypeVar("T")
# tasks that fail (a worker died under them) run again on another worker this many times
RETRIES = 1


def get_client(client: Any = None, scheduler: str | None = None, *,
               timeout: str = "20s") -> Any:
    """``client``, else a :class:`distributed.Client` of the scheduler at ``scheduler``
    (waiting ``timeout`` for it to answer), else None (run here)."""
    if client is not None and scheduler is not None:
        msg = (f"client={client!r} and scheduler={scheduler!r}: pass one of them (a Client, "
               "or the address of a scheduler to connect to).")
        raise ValueError(msg)
    if client is not None or scheduler is None:
        return client
    try:
        from distributed import Client
    except ImportError as e:
        msg = Message(Fix("scheduler=", "--scheduler"), " needs dask.distributed: pip install "
                      "'sensorium[cluster]' (or distributed).")
        raise ImportError(msg) from e
    try:
        # not the default: this process's own dask computations stay here
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except OSError as e:
        msg = (f"no dask scheduler answers at {scheduler!r} ({e}); start one (dask scheduler, "
               "dask worker ADDRESS) or pass its address as tcp://host:8786.")
        raise OSError(msg) from e


def run_tasks(function: Callable[..., T], items: Sequence[Any], *, client: Any = None,
              names: Sequence[str] | None = None) -> list[T]:
    """``[function(*item) for item in items]``: here without a client, else one task per item
    on the cluster (results in the order of ``items``). A failed task raises naming its item."""
    names = [str(i) for i in items] if names is None else list(names)
    if client is None:
        return [function(*item) for item in items]
    run = uuid.uuid4().hex[:8]  # keys of this call only: a key seen before returns its result
    futures = [client.submit(function, *item, pure=False, retries=RETRIES, key=f"{n}-{run}-{i}")
               for i, (item, n) in enumerate(zip(items, names, strict=True))]
    out = []
    for future, name in zip(futures, names, strict=True):
        try:
            out.append(future.result())
        except Exception as e:
            for other in futures:
                other.cancel()
            msg = (f"{name} failed on the cluster ({type(e).__name__}: {e}); nothing of it was "
                   "published. Fix the cause and run the call again (finished items are kept).")
            raise ClusterError(msg) from e
    return out


def convert_many(trees: Sequence[str | os.PathLike[str]],
                 stores: Sequence[str | os.PathLike[str]] | None = None, *,
                 client: Any = None, scheduler: str | None = None, overwrite: bool = False,
                 storage_options: dict | None = None,
                 data_dir: str | os.PathLike[str] | None = None) -> list[Any]:
    """Convert many recordings, one task per recording on ``client`` (or ``scheduler``);
    return their stores (each ``sensorium_data.convert(tree, store)``).

    Examples
    --------
    Without a client they are converted here, one after another:

    >>> stores = convert_many(tiny[:2], ["A.zarr", "B.zarr"])
    >>> [s.name for s in stores]
    ['A.zarr', 'B.zarr']

    On a cluster of four workers, into a bucket:

    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=4))  # doctest: +SKIP
    >>> convert_many(["trees/A", "trees/B"], ["s3://lab/A.zarr", "s3://lab/B.zarr"],
    ...              client=client)  # doctest: +SKIP
    """
    if client is not None and scheduler is not None:
        get_client(client, scheduler)  # the error naming both
    if stores is not None and len(stores) != len(trees):
        msg = (f"{len(trees)} trees and {len(stores)} stores; pass one store per tree, or none "
               "(each into the cache).")
        raise ValueError(msg)
    made = get_client(None, scheduler) if client is None else None
    targets: list[Any] = list(stores) if stores is not None else [None] * len(trees)
    cache = None if data_dir is None else str(data_dir)  # the workers' cache folder
    items = [(str(t), None if s is None else str(s), overwrite, storage_options, cache)
             for t, s in zip(trees, targets, strict=True)]
    try:
        return run_tasks(_convert_one, items, client=client or made,
                         names=[f"converting {Path(str(t)).name}" for t in trees])
    finally:
        if made is not None:
            made.close()


def _convert_one(tree: str, store: str | None, overwrite: bool,
                 storage_options: dict | None, data_dir: str | None) -> Any:
    from sensorium_data.store import convert

    return convert(tree, store, overwrite=overwrite, progress=False,
                   storage_options=storage_options, data_dir=data_dir)
