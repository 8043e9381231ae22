"""Evaluation protocols: each method's own (its paper's code) and the common one, side by side.

A distiller declares the protocol its paper evaluated with as a :class:`Protocol` (class attribute ``protocol``,
or :meth:`~atombench.distillers.base.Distiller.paper_protocol` when it depends on the dataset, the model or the
IPC). The suite's ``eval:`` section is the **common** protocol; ``eval.protocol`` chooses what is trained:

* ``common`` (default): every method under the suite's ``eval:`` settings;
* ``paper``: every method under its own protocol (a method that declares none, an outside plug-in for example,
  gets the common one);
* ``both``: each model is trained under both; ``results.csv`` has a ``protocol`` column and the report a
  fairness table (``atombench.report.tables.fairness_table``).

A protocol overrides the training settings it names (epochs, batch size, optimiser, learning rate, weight decay,
schedule, augmentation and mixing); the others (test batch, ensemble, compile, amp) stay the suite's. Settings come
in groups, and a protocol that names one setting of a group declares the whole group, its unnamed settings at the
reference's values rather than the suite's (:func:`resolve_train`): naming ``lr`` means SGD with momentum 0.9 and
weight decay 5e-4 (the papers' ``evaluate_synset``) unless ``optimizer`` or ``weight_decay`` says otherwise, naming
``lr_decay`` or ``lr_milestones`` declares the whole schedule, naming ``augment`` means its reference strategy
(DSA's with cutout) unless ``strategy`` is named and no ``mix`` unless one is named; so the protocols keep their
meaning under a suite whose common protocol uses AdamW, another momentum or decay, steps, another DSA strategy or
CutMix (``docs/evaluation_protocols.md#optimiser-schedule-and-mixing``). ``lr: learned`` takes the step
size stored in the synthetic set's metadata (``syn_lr``, MTT). ``checkpoint`` says which synthetic set the paper
reports (``final``, or ``best``: the best of several checkpoints by test accuracy, DataDAM's code); atombench always
evaluates the final set and shows the declared rule in the fairness table's caption. ``zca`` maps a dataset name
to the ZCA space the paper whitened it in (``zca: paper`` on a suite's dataset entry applies it).
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
    #: ``sgd`` or ``adamw`` (:class:`~atombench.train.TrainConfig`); a protocol that names ``adamw`` names its
    #: ``weight_decay`` too (AdamW's is decoupled: torch's default 0.01, not SGD's 5e-4)
    optimizer: Optional[Literal["sgd", "adamw"]] = None
    #: the weight decay; unset: the suite's (or, when the protocol's optimiser is SGD and the suite's is not, the
    #: reference's 5e-4)
    weight_decay: Optional[float] = None
    lr_decay: Optional[bool] = None
    #: a multi-step schedule (fractions of the epochs, ``TrainConfig.lr_milestones``) with factor ``lr_gamma``
    #: (default 0.1); replaces ``lr_decay``
    lr_milestones: Optional[tuple] = None
    lr_gamma: Optional[float] = None
    #: ``none``, ``dsa`` or ``dc`` (DC's per-image augmentation, :class:`atombench.augment.DCAugment`)
    augment: Optional[Literal["none", "dsa", "dc"]] = None
    #: DC augmentation's operations joined by ``_`` (``crop_scale_rotate``, ``crop_noise``) or the DSA strategy
    strategy: Optional[str] = None
    #: ``mixup`` or ``cutmix`` applied after ``augment`` with probability ``mix_prob`` per batch (default 1;
    #: ``TrainConfig.mix``); needs ``augment`` named
    mix: Optional[Literal["none", "mixup", "cutmix"]] = None
    mix_prob: Optional[float] = None
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
        check(self.optimizer in (None, "sgd", "adamw"), f"protocol optimizer must be sgd or adamw, got "
                                                        f"{self.optimizer!r}")
        check(self.optimizer != "adamw" or self.weight_decay is not None,
              "a protocol with optimizer adamw must name its weight_decay (AdamW's is decoupled; torch's default "
              "is 0.01)")
        check(self.weight_decay is None or self.weight_decay >= 0,
              f"protocol weight_decay must be >= 0, got {self.weight_decay}")
        ms = self.lr_milestones
        if ms is not None:
            check(isinstance(ms, (list, tuple)) and all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                                        and 0 < f <= 1 for f in ms)
                  and all(a < b for a, b in zip(ms, ms[1:])),
                  f"protocol lr_milestones must be increasing fractions of the epochs in (0, 1], got {ms!r}")
            object.__setattr__(self, "lr_milestones", tuple(float(f) for f in ms))
            check(not self.lr_decay, "protocol lr_milestones replace lr_decay: leave lr_decay unset or false")
        check(self.lr_gamma is None or (self.lr_milestones and self.lr_gamma > 0),
              f"protocol lr_gamma must be > 0 and come with lr_milestones, got {self.lr_gamma}")
        check(self.mix in (None, "none", "mixup", "cutmix"),
              f"protocol mix must be none, mixup or cutmix, got {self.mix!r}")
        check(self.mix in (None, "none") or self.augment is not None,
              "a protocol with mix names the augmentation it comes after (augment: none, dsa or dc)")
        check(self.mix_prob is None or (self.mix not in (None, "none") and 0 < self.mix_prob <= 1),
              f"protocol mix_prob must be in (0, 1] and come with mix, got {self.mix_prob}")

    #: the settings a protocol may name, in ``TrainConfig``'s names (``strategy`` maps to one of two)
    FIELDS = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "lr_decay", "lr_milestones", "lr_gamma",
              "augment", "mix", "mix_prob")

    def train_overrides(self) -> dict:
        """The training settings this protocol sets (``TrainConfig`` field names)."""
        out = {k: getattr(self, k) for k in self.FIELDS if getattr(self, k) is not None}
        if self.lr_milestones:  # the multi-step schedule replaces the halfway decay
            out["lr_decay"] = False
        if self.strategy is not None:
            out["dc_strategy" if self.augment == "dc" else "dsa_strategy"] = self.strategy
        return out

    def implied(self, common: dict) -> dict:
        """The settings the protocol declares without naming them (see the module docstring): the reference's
        values of the new settings of each group it names, where the suite's ``common`` settings differ."""
        from .train import TrainConfig

        ref = TrainConfig()
        out: dict = {}
        if self.lr is not None and self.optimizer is None:
            out["optimizer"] = ref.optimizer
        optimizer = self.optimizer or out.get("optimizer", common.get("optimizer", ref.optimizer))
        if self.weight_decay is None and (self.lr is not None or optimizer != common.get("optimizer", ref.optimizer)):
            out["weight_decay"] = ref.weight_decay  # SGD's reference decay (adamw names its own)
        if (self.lr is not None or self.optimizer is not None) and optimizer == "sgd":
            out["momentum"] = ref.momentum  # the papers' SGD momentum
        if self.augment in ("dsa", "dc") and self.strategy is None:
            field = "dsa_strategy" if self.augment == "dsa" else "dc_strategy"
            out[field] = getattr(ref, field)
        if self.lr_decay is not None or self.lr_milestones is not None:
            if self.lr_milestones is None:
                out["lr_milestones"] = ref.lr_milestones
            if self.lr_gamma is None:
                out["lr_gamma"] = ref.lr_gamma
        if self.augment is not None:
            if self.mix is None:
                out["mix"] = ref.mix
            if self.mix_prob is None:
                out["mix_prob"] = ref.mix_prob
        if self.mix not in (None, "none"):  # its Beta parameter at the default (CutMix's 1.0: NCFM's, DD-Ranking's)
            out["mixup_alpha" if self.mix == "mixup" else "cutmix_beta"] = \
                ref.mixup_alpha if self.mix == "mixup" else ref.cutmix_beta
        return {k: v for k, v in out.items() if k in common and common[k] != v}

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
    """The training config of one evaluation job: the common settings with the protocol's overrides, and the
    reference's values of the settings it declares without naming them (:meth:`Protocol.implied`)."""
    out = dict(common)
    if protocol is not None:
        out.update(protocol.implied(common))
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
