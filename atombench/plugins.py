"""The former name of :mod:`atombench.factories` (the plug-in factories: ``load_dataset``, ``make_distiller``,
``build_model``, ...), kept so that code importing from here keeps working; new code imports
:mod:`atombench.factories`. The plug-ins themselves are registered in :mod:`atombench.registry`."""

from .factories import (  # noqa: F401 - re-exported under their former module
    _DATA_CACHE,
    build_model,
    dataset_args,
    load_data,
    load_dataset,
    make_distiller,
    paper_dataset,
)

__all__ = ["build_model", "dataset_args", "load_data", "load_dataset", "make_distiller", "paper_dataset"]
