"""`launcher=ray`: Hydra's Ray launcher, except that a Ray it starts itself listens on loopback.

With no address (and no cluster started by `ray start` on this machine), `ray.init()` starts a
Ray instance for the sweep whose GCS, raylet, workers and dashboard agent listen on every
interface, without authentication unless a token is set. A sweep on this machine needs none of
that reachable: here Ray is told it is a one-machine cluster (its
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, the single-node mode Ray uses by default on Windows and
macOS), so every one of its sockets binds 127.0.0.1. Joining a cluster (an address, `RAY_ADDRESS`
or a local `ray start`) is unchanged: such a cluster listens where whoever started it chose.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher

log = logging.getLogger(__name__)

SINGLE_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": one machine, loopback only


def starts_its_own_ray(address: str | None) -> bool:
    """Whether `ray.init(address=address)` would start a new Ray instance on this machine."""
    if address or os.environ.get("RAY_ADDRESS"):
        return False
    # Where `ray start` records the cluster it started (ray._common.utils.get_ray_address_file)
    system_temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return not (Path(system_temp) / "ray" / "ray_current_cluster").exists()


class LoopbackRayLauncher(RayLauncher):
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        if starts_its_own_ray(self.ray_cfg.init.get("address")):
            os.environ.setdefault(SINGLE_NODE, "0")  # read when Ray is imported and started
            log.info("starting Ray for this sweep on 127.0.0.1 only")
        return super().launch(job_overrides, initial_job_idx)
