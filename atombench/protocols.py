"""Evaluation protocols: each method's own (its paper's code) and the common one, side by side.

A distiller declares the protocol its paper evaluated with as a :class:`Protocol` (class attribute ``protocol``,
or :meth:`~atombench.distillers.base.Distiller.paper_protocol` when it depends on the dataset, the model or the
IPC). The suite's ``eval:`` section is the **common** protocol; ``eval.protocol`` chooses what is trained:

* ``common`` (default): every method under the suite's ``eval:`` settings;
* ``paper``: every method under its own protocol (a method that declares none, an outside plug-in for example,
  gets the common one);
* ``both``: each model is trained under both; ``results.csv`` has a ``protocol`` column and the report a
  fairness table (``atombench.report.tables.fairness_table``).

A protocol overrides the training settings it names (epochs, batch size, learning rate, lr decay, augmentation);
the others (momentum, weight decay, test batch, ensemble, compile, amp) stay the suite's. ``lr: learned`` takes
the step size stored in the synthetic set's metadata (``syn_lr``, MTT). ``checkpoint`` says which synthetic set
the paper reports (``final``, or ``best``: the best of several checkpoints by test accuracy, DataDAM's code);
atombench always evaluates the final set and shows the declared rule in the fairness table's caption. ``zca`` maps a
dataset name to the ZCA space the paper whitened it in (``zca: paper`` on a suite's dataset entry applies it).
Every value carries its source in ``sources`` (``docs/evaluation_protocols.md#per-method``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional, Union

from .config import check

PROTOCOLS = ("common", "paper", "both")


@dataclass(frozen=True)
class Protocol:
    """A paper's evaluation protocol (see the module docstring); unset fields keep the common protocol's value."""

    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    #: a number, or ``learned``: the step size the distiller learned (``syn_lr`` in the synthetic set's metadata)
    lr: Optional[Union[float, Literal["learned"]]] = None
    lr_decay: Optional[bool] = None
    #: ``none``, ``dsa`` or ``dc`` (DC's per-image augmentation, :class:`atombench.augment.DCAugment`)
    augment: Optional[Literal["none", "dsa", "dc"]] = None
    #: DC augmentation's operations joined by ``_`` (``crop_scale_rotate``, ``crop_noise``) or the DSA strategy
    strategy: Optional[str] = None
    #: the synthetic set the paper reports: ``final`` or ``best`` (of several checkpoints, by test accuracy)
    checkpoint: Literal["final", "best"] = "final"
    #: dataset plug-in name -> the ZCA space the paper whitened it in (``unit_interval`` or ``normalised``)
    zca: tuple = ()
    #: field -> where the value comes from
    sources: tuple = ()

    def __post_init__(self) -> None:
        check(self.epochs is None or self.epochs >= 0, f"protocol epochs must be >= 0, got {self.epochs}")
        check(self.batch_size is None or self.batch_size >= 1,
              f"protocol batch_size must be >= 1, got {self.batch_size}")
        check(self.lr is None or self.lr == "learned" or (isinstance(self.lr, (int, float)) and self.lr > 0),
              f"protocol lr must be > 0 or 'learned', got {self.lr!r}")
        check(self.augment in (None, "none", "dsa", "dc"), f"protocol augment must be none, dsa or dc, got "
                                                          f"{self.augment!r}")

    def train_overrides(self) -> dict:
        """The training settings this protocol sets (``TrainConfig`` field names)."""
        out = {k: getattr(self, k) for k in ("epochs", "batch_size", "lr", "lr_decay", "augment")
               if getattr(self, k) is not None}
        if self.strategy is not None:
            out["dc_strategy" if self.augment == "dc" else "dsa_strategy"] = self.strategy
        return out

    def zca_for(self, dataset: str) -> Optional[str]:
        return dict(self.zca).get(dataset)

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, (), {})}


def with_(protocol: Protocol, **changes) -> Protocol:
    """A copy of ``protocol`` with ``changes`` (a frozen dataclass's ``replace``)."""
    from dataclasses import replace

    return replace(protocol, **changes)


#: the ZCA the papers of MTT, DataDAM and ATOM used on CIFAR (``docs/preprocessing.md#zca``)
CIFAR_UNIT_ZCA = (("cifar10", "unit_interval"), ("cifar100", "unit_interval"))
CIFAR_NORMALISED_ZCA = (("cifar10", "normalised"), ("cifar100", "normalised"))


def resolve_train(common: dict, protocol: Optional[Protocol]) -> dict:
    """The training config of one evaluation job: the common settings with the protocol's overrides."""
    out = dict(common)
    if protocol is not None:
        out.update(protocol.train_overrides())
    return out


def expand(choice: str) -> list[str]:
    """The protocols a suite's ``eval.protocol`` trains under, in table order."""
    return ["paper", "common"] if choice == "both" else [choice]


class ModelName(str):
    """A model's plug-in name as :meth:`~atombench.distillers.base.Distiller.paper_protocol` receives it: the name
    (it compares, hashes and prints as the name), with the suite entry's ``options`` attached, so that a rule that
    depends on the network (DC's ConvNetBN) sees ``convnet`` with ``norm: batchnorm`` as the same network as
    ``convnet_bn``."""

    options: dict

    def __new__(cls, name: str, options: Optional[dict] = None) -> "ModelName":
        obj = super().__new__(cls, name)
        obj.options = dict(options or {})
        return obj

    def __reduce__(self):
        return (ModelName, (str(self), self.options))
