"""GPUs per engine at start-up: from the deployment where it says, else the flags (§11.10).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
from typing import Any

from dynamo_planner.exceptions import DeploymentValidationError

__all__ = ["resolve_gpu_counts"]

logger = logging.getLogger(__name__)

_FLAGS = {"prefill": "--prefill-engine-num-gpu", "decode": "--decode-engine-num-gpu"}


def _planned(mode: str) -> tuple[bool, bool]:
    return mode in ("disagg", "prefill"), mode in ("disagg", "decode", "agg")


async def resolve_gpu_counts(
    *,
    mode: str,
    prefill_flag: int | None,
    decode_flag: int | None,
    connector: Any = None,
    dry_run: bool = False,
) -> tuple[int | None, int | None]:
    """GPUs of one prefill and one decode engine.

    * Dry runs: a missing flag is 1; given flags are kept.
    * A connector with ``gpus_per_engine()`` (Kubernetes) overrides the flags with what
      the deployment says; if it fails, or says nothing for a component, the flag is used.
    * Otherwise (the virtual connector) the flags are used as given.

    Every component the mode plans must end with a count.

    Args:
        mode: ``disagg``, ``prefill``, ``decode`` or ``agg``.
        prefill_flag: ``--prefill-engine-num-gpu``.
        decode_flag: ``--decode-engine-num-gpu``.
        connector: The connector, if any.
        dry_run: Offline replay: missing counts default to 1.

    Returns:
        The counts; a component the mode does not plan may be ``None``.

    Raises:
        DeploymentValidationError: Naming every missing flag.
    """
    if dry_run:
        return (
            1 if prefill_flag is None else prefill_flag,
            1 if decode_flag is None else decode_flag,
        )
    prefill, decode = prefill_flag, decode_flag
    discover = getattr(connector, "gpus_per_engine", None)
    if discover is not None:
        try:
            found_prefill, found_decode = await discover()
        except Exception as exc:  # noqa: BLE001 (any failure falls back to the flags)
            logger.warning(
                "cannot read GPUs per engine from the deployment (%s); using the flags",
                exc,
            )
        else:
            prefill = prefill if found_prefill is None else found_prefill
            decode = decode if found_decode is None else found_decode
    need_prefill, need_decode = _planned(mode)
    missing = [
        _FLAGS[kind]
        for kind, needed, value in (
            ("prefill", need_prefill, prefill),
            ("decode", need_decode, decode),
        )
        if needed and value is None
    ]
    if missing:
        raise DeploymentValidationError(
            f"{len(missing)} error(s): GPUs per engine unknown; set "
            + " and ".join(missing),
            connector=type(connector).__name__ if connector is not None else "none",
        )
    return prefill, decode
