"""Starting or joining Ray."""

from __future__ import annotations

import os

import ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Joins the cluster at ``address`` or starts a local instance, unless already connected.

    A local instance keeps more idle worker processes than Ray's default (one per CPU).
    Decode tasks import torch, which takes seconds; with the default, Ray kills the idle task
    workers between epochs and every epoch pays those imports again (measured on 2 cores: a
    demo epoch took 20 s instead of 3 s). On a cluster, set ``RAY_num_workers_soft_limit``
    for ``ray start`` the same way.
    """
    # Per-operator progress bars from several workers garble a terminal; epochs log progress.
    # Set in every process that builds datasets (a driver, a Tune trial).
    ray.data.DataContext.get_current().enable_progress_bars = False
    if ray.is_initialized():
        return
    if address is None:
        cpus = num_cpus or os.cpu_count() or 1
        os.environ.setdefault("RAY_num_workers_soft_limit", str(max(8, 2 * cpus)))
    ray.init(address=address, num_cpus=num_cpus)
