"""The one list of config keys that change nothing a run computes.

Used wherever runs are compared by their config: the resume check (``scyc.lifecycle.rundir``: a resumed run may change
these), a sweep's W&B group (``scyc.sweep.sweeps``: left out of it) and the results tables (``scyc.sweep.tables``: never a
row key, so a sweep resumed with ``resume=true`` or with its data moved stays one row per schedule). A key
matches an entry when it is the entry or lies below it (``checkpoint.keep`` below ``checkpoint``).
"""

from __future__ import annotations

NON_RESULT_KEYS = (
    "resume",  # continue from a checkpoint: the rounds computed are the same
    "resume_allow_data_change",
    "progress",  # terminal bars
    "wandb",  # logging
    "checkpoint",  # how many epoch checkpoints are kept
    "device",  # where it runs (may change on resume)
    "data_dir",  # where the data are found ...
    "dataset.root",
    "dataset.download",  # ... and whether they may be fetched
    "hydra",  # Hydra's own settings (run/sweep dirs, launcher)
)


# Keys that an older run's config holds as null where conf/ now sets the value that null meant (a default moved
# into YAML): a run compares them as that value, so it still resumes and still matches its copies.
NULL_MEANT = {
    "schedule.lag_rounds": 0,  # null = 0 in build_schedule; conf/config.yaml sets 0 since issue 25
}


def meant(key: str, value: object) -> object:
    """The value of the flat ``key`` as a run meant it: an older run's null read as ``NULL_MEANT`` says."""
    return NULL_MEANT[key] if value is None and key in NULL_MEANT else value


def same_value(key: str, a: object, b: object) -> bool:
    """Whether two runs' values of the flat ``key`` agree (``meant``: the resume check)."""
    return meant(key, a) == meant(key, b)


def changes_no_result(key: str) -> bool:
    """True for a key (``resume``, ``+checkpoint.keep``, ``hydra/launcher``) that changes nothing computed."""
    key = key.lstrip("+~")
    return any(key == k or key.startswith((k + ".", k + "/")) for k in NON_RESULT_KEYS)
