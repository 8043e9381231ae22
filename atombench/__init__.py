"""atombench: a benchmarking suite for dataset distillation built around ATOM, plugged into timm.

Importing the package is cheap: plug-ins (distillers, models, datasets) are discovered through entry points
and imported on first use (see :mod:`atombench.registry`).
"""

__version__ = "0.1.0"
