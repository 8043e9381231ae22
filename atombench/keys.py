"""Keys: the content hashes that name every result (a synthetic set, a snapshot, an evaluation).

A key hashes everything that determines a result and nothing else, so results computed by any earlier run with
the same inputs are found again (:class:`~atombench.store.ResultsStore`). Options added after results existed enter
a key only away from their default value (:data:`TRAIN_KEYED_UNLESS_DEFAULT`, :data:`CONFIG_KEYED_UNLESS_DEFAULT`),
so those results keep their keys.
"""

from __future__ import annotations

from .runtime import stable_hash

#: training options that never change what is computed, only how (an ensemble equals separate runs to float
#: tolerance): always left out of job keys
SPEED_ONLY = frozenset({"ensemble"})
#: training options left out of job keys while at these values (their defaults), so that the results computed before
#: each option existed keep their keys; any other value is part of the key, because it changes the results
#: (``amp: bf16`` trains in lower precision; ``compile`` may change float rounding)
TRAIN_KEYED_UNLESS_DEFAULT = {"compile": False, "amp": "none", "dc_strategy": "crop_scale_rotate", "mixup_alpha": 0.8,
               "cutmix_beta": 1.0, "labels": "hard", "temperature": 1.2, "optimizer": "sgd", "lr_milestones": (),
               "lr_gamma": 0.1, "mix": "none", "mix_prob": 1.0}


#: the former name of :data:`TRAIN_KEYED_UNLESS_DEFAULT`, for outside code
ADDED_LATER = TRAIN_KEYED_UNLESS_DEFAULT


def _at_default(k: str, v) -> bool:
    d = TRAIN_KEYED_UNLESS_DEFAULT[k]
    return v == d or (isinstance(d, tuple) and isinstance(v, (list, tuple)) and tuple(v) == d)


def train_key_config(train: dict) -> dict:
    """The part of a training config that enters a job key (see :data:`SPEED_ONLY`,
    :data:`TRAIN_KEYED_UNLESS_DEFAULT`)."""
    return {k: v for k, v in train.items()
            if k not in SPEED_ONLY and not (k in TRAIN_KEYED_UNLESS_DEFAULT and _at_default(k, v))}


#: distiller config fields left out of synthetic-set keys while at these values (their defaults), so that the sets
#: distilled before each field existed keep their keys
CONFIG_KEYED_UNLESS_DEFAULT = {"real_amp": "none", "channels_last": False, "compile": "none", "cuda_graph": False}
#: values that run as the default does, so they key as it: ``compile: auto`` never made concrete (a distiller built
#: outside a suite, whose preflight resolves it: :func:`atombench.distillers.matching.concrete_compile`) runs eagerly
_RUNS_AS = {"compile": ("auto",)}
#: the former name of :data:`CONFIG_KEYED_UNLESS_DEFAULT`, for outside code
CONFIG_ADDED_LATER = CONFIG_KEYED_UNLESS_DEFAULT


def synset_key(real, distiller, ipc: int, seed: int, extra: dict | None = None) -> str:
    """The key of a synthetic set: dataset fingerprint, distiller name and resolved config, IPC and seed, and what a
    ``set`` axis of the grid adds (``extra``; none: the key is as it always was)."""
    from . import config as cfgmod

    more = [extra] if extra else []
    identity = distiller.synset_identity(real, ipc, seed)
    if identity is not None:  # a set read from files: their checksum, not a path (other distillers: unchanged)
        return stable_hash(["synset", real.fingerprint, distiller.name, identity, ipc, seed, *more])
    config = {k: v for k, v in cfgmod.to_dict(distiller.config).items()
              if not (k in CONFIG_KEYED_UNLESS_DEFAULT and v in (CONFIG_KEYED_UNLESS_DEFAULT[k], *_RUNS_AS.get(k, ())))}
    return stable_hash(["synset", real.fingerprint, distiller.name, config, ipc, seed, *more])


def snapshot_key(synset_key: str, iteration: int) -> str:
    """The key of the snapshot after ``iteration`` iterations of the distillation whose set is ``synset_key``."""
    return stable_hash(["snapshot", synset_key, int(iteration)])


def job_key(synset_key: str, model: str, options: dict, train: dict, seed: int) -> str:
    """The key of one evaluation: synthetic set (its key), model spec, training config and seed."""
    return stable_hash(["job", synset_key, model, options, train_key_config(train), seed])
