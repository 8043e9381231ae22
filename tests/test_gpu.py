"""CUDA checks: every distiller runs on ``cuda`` with the same code path, the batched iteration equals the
per-class reference there too, ensembles match the loop, and a suite runs end to end on the GPU.

Skipped where no GPU is present (CI); run on a GPU machine with ``python -m pytest tests/test_gpu.py``."""

import pytest
import torch

from atombench import registry
from atombench.data.base import RealData
from atombench.distillers.base import DistillContext
from atombench.runner import load_dataset, make_distiller, run_suite

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {"net_options": {"width": 16, "depth": 3}}
SETTINGS = {
    "dm": {"iterations": 3, "batch_real": 16},
    "datadam": {"iterations": 3, "batch_real": 16},
    "atom": {"iterations": 3, "batch_real": 16},
    "dc": {"iterations": 2, "batch_real": 16},
    "dsa": {"iterations": 2, "batch_real": 16},
    "mtt": {"iterations": 3, "num_experts": 1, "expert_train_epochs": 3, "max_start_epoch": 1,
            "expert_epochs": 1, "syn_steps": 3},
    "kcenter": {"train_epochs": 1},
    "forgetting": {"train_epochs": 1},
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", {})


@pytest.mark.parametrize("method", sorted(set(registry.distillers.names()) - {"files"}))  # files: reads, computes nothing
def test_every_distiller_runs_on_cuda(method, digits, tmp_path):
    fields = registry.distillers.get(method).Config.__dataclass_fields__
    opts = dict(SETTINGS.get(method, {}), **(TINY if "net_options" in fields else {}))
    opts = {k: v for k, v in opts.items() if k in fields}
    d = make_distiller(method, opts)
    ctx = DistillContext("cuda", seed=0, show_progress=False, cache_dir=tmp_path)
    s = d.run(digits, 2, ctx)
    assert s.images.shape == (20, *digits.train_x.shape[1:]) and torch.isfinite(s.images).all()
    assert s.meta["device"] == "cuda" and s.meta["peak_mem_kind"].startswith("cuda")


@pytest.mark.parametrize("method", ["dm", "datadam", "atom"])
def test_batched_equals_per_class_on_cuda(method):
    from atombench.augment import DSA

    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(12)
    x = torch.randn(48, 3, 16, 16, generator=g) + y.view(-1, 1, 1, 1).float()
    data = RealData("toy", x, y, x[:8], y[:8], list("abcd"), [0.0] * 3, [1.0] * 3)
    d = make_distiller(method, {"net_options": {"width": 8}, "batch_real": 6})
    ctx = DistillContext("cuda", seed=3, show_progress=False)
    net = ctx.fresh_net("convnet", {"width": 8}, data)
    real = torch.cat([x[y == c][:6] for c in range(4)]).cuda()
    syn = torch.cat([x[y == c][6:8] for c in range(4)]).cuda().requires_grad_(True)
    seeds = [1, 2, 3, 4]
    batched = d.iteration_loss(net, real, syn, 4, seeds, DSA())
    d.config.batched = False
    loop = d.iteration_loss(net, real, syn, 4, seeds, DSA())
    assert torch.allclose(batched, loop, rtol=1e-4, atol=1e-5)


def test_suite_runs_on_cuda_with_ensembles(tmp_path):
    suite = tmp_path / "gpu.yaml"
    suite.write_text(f"""name: gpu
datasets: [digits]
ipc: [1]
distillers:
  - random
  - name: atom
    config: {{iterations: 5}}
models: [convnet]
seeds: 1
eval: {{epochs: 20, models_per_set: 3, ensemble: on}}
device: cuda
output: {tmp_path / 'out'}
""")
    table = run_suite(suite, progress=False).table
    assert (table["status"] == "ok").all() and (table["device"].str.startswith("cuda")).all()
    assert (table["ensemble_size"] == 3).all()
