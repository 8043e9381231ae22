"""A distiller plug-in: every synthetic image starts as its class's mean image, then a few seeded SGD steps
pull the class's synthetic images towards the mean embedding of real batches of the class (a tiny DM)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atombench.augment import DSA
from atombench.config import check
from atombench.data.base import RealData
from atombench.distillers.base import DistillContext, Distiller, class_balanced_labels
from atombench.protocols import Protocol


@dataclass
class ClassMeanConfig:
    """Hyper-parameters with their defaults (cite the paper and section each default comes from)."""

    noise: float = 0.1            # std of the seeded noise added to the class means (so the IPC images differ)
    iterations: int = 20          # SGD steps on the synthetic pixels; 0: the noisy class means as they are
    lr_img: float = 0.1
    real_per_class: int = 32      # real images per class per iteration
    net: str = "tiny_mlp"         # the network whose embedding is matched (any registered model)
    net_options: dict | None = None
    dsa: bool = True              # the same DSA transformation on a class's real and synthetic batch

    def __post_init__(self):      # impossible values become suite errors naming the key
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        check(self.real_per_class >= 1, f"real_per_class must be >= 1, got {self.real_per_class}")


class ClassMeanDistiller(Distiller):
    """Class means plus noise, refined by matching mean embeddings (an example plug-in)."""

    Config = ClassMeanConfig
    #: the name in the report's tables and plots (default: the registered name, class_mean)
    display_name = "ClassMean"
    #: whether the method's paper evaluates its sets with DSA (the suite's eval.augment: auto follows it)
    eval_with_dsa = False
    #: how the method's paper evaluates its sets (eval.protocol: paper | both uses it; without one, the common
    #: protocol): the settings it names replace the suite's, each with its source
    protocol = Protocol(epochs=300, batch_size=64, lr=0.01, augment="none", checkpoint="final",
                        sources=(("epochs", "our paper, Sec. 4.1"), ("batch_size", "our paper, Sec. 4.1"),
                                 ("lr", "our paper, Table 5"), ("augment", "our code, eval.py"),
                                 ("checkpoint", "our paper reports the final set")))
    #: published numbers shown beside ours in the report's main table: dataset, ipc (None: any), mean, std,
    #: model (the evaluation model's registered name), verified (read in the source: shown by default; False:
    #: only with --published all), source, note. An example: put your paper's numbers and table here.
    published = [{"dataset": "blobs", "ipc": 1, "mean": 90.0, "std": 1.0, "model": "tiny_mlp",
                  "verified": False, "source": "Example et al., 2025, Table 1 (replace with your paper)"}]

    def check_ipc(self, data: RealData, ipc: int) -> str | None:
        # a message when this IPC is impossible for this dataset (None: fine); the default refuses IPCs
        # larger than the smallest class, which a method that does not select real images may lift
        return None if ipc >= 1 else f"IPC must be >= 1, got {ipc}"

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        cfg = self.config
        k = data.num_classes
        # data.train_x is on the CPU; data.class_indices[c] is a LongTensor of the indices of class c
        means = torch.stack([data.train_x[idx].mean(0) for idx in data.class_indices])
        syn = means.repeat_interleave(ipc, 0)                       # class 0's ipc images, then class 1's, ...
        syn = syn + cfg.noise * torch.randn(syn.shape, generator=ctx.generator)  # every random draw: ctx.generator
        syn = syn.to(ctx.device).requires_grad_(True)
        opt = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=0.5)
        dsa = DSA(digits=bool(data.tags.get("digits"))) if cfg.dsa else None
        bar = ctx.progress(range(cfg.iterations), total=cfg.iterations)
        for it in bar:
            net = ctx.fresh_net(cfg.net, cfg.net_options, data)     # new random weights each iteration, frozen
            real = torch.cat([data.sample_class(c, cfg.real_per_class, ctx.generator) for c in range(k)])
            real = real.to(ctx.device)
            images = syn
            if dsa:  # one seed per class: the class's real and synthetic images get the same transformation
                seeds = [ctx.next_seed() for _ in range(k)]
                real, images = dsa.siamese(real, seeds), dsa.siamese(syn, seeds)
            with torch.no_grad():
                target = net.extract(real).embedding.view(k, cfg.real_per_class, -1).mean(1)
            mine = net.extract(images).embedding.view(k, ipc, -1).mean(1)
            loss = ((target - mine) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.report(it, loss)                                    # loss curve, progress bar, NaN check
        bar.close()
        labels = class_balanced_labels(k, ipc)                      # [0]*ipc + [1]*ipc + ...
        return syn.detach(), labels, {"init": "class means"}        # extras: stored in the set's metadata
