"""Every registered model builds at the literature's input sizes and honours the FeatureNet hook; the ConvNet is
the reference's; timm models by name."""

import pytest
import torch

from atombench import registry
from atombench.errors import AtombenchError, PluginError

NAMES = [n for n in registry.models.names() if n != "timm"]


def build(name, channels, size, options=None, classes=10):
    return registry.models.get(name).build(options, channels, classes, size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels, size", [(3, (32, 32)), (1, (28, 28))])
def test_every_model_builds_and_exposes_features(name, channels, size):
    torch.manual_seed(0)
    net = build(name, channels, size).eval()
    x = torch.randn(2, channels, *size)
    feats = net.extract(x)
    assert all(m.ndim == 4 for m in feats.maps) and feats.embedding.ndim == 2
    logits = net(x)
    assert logits.shape == (2, 10)
    assert torch.allclose(logits, net.classify(feats.embedding), atol=1e-5)


def test_convnet_is_the_reference():
    net = build("convnet", 3, (32, 32))
    assert net.embed_dim == 2048 and len(net.blocks) == 3
    norm = net.blocks[0][1]
    assert isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == norm.num_channels == 128 and norm.affine
    assert net.blocks[0][0].padding == (1, 1)
    mnist = build("convnet", 1, (28, 28))
    assert mnist.blocks[0][0].padding == (3, 3) and mnist.embed_dim == 2048  # the 1-channel quirk
    maps = mnist.extract(torch.randn(1, 1, 28, 28)).maps
    assert [tuple(m.shape[-2:]) for m in maps] == [(32, 32), (16, 16), (8, 8)]
    assert isinstance(build("convnet_bn", 3, (32, 32)).blocks[0][1], torch.nn.BatchNorm2d)
    assert len(build("convnet_d4", 3, (32, 32)).blocks) == 4
    assert build("convnet_w64", 3, (32, 32)).embed_dim == 64 * 16
    assert build("convnet", 3, (64, 64)).embed_dim == 128 * 8 * 8  # Tiny-ImageNet


def test_cross_architecture_heads():
    assert build("alexnet", 3, (32, 32)).classifier.in_features == 192 * 4 * 4
    assert build("vgg11_bn", 3, (32, 32)).classifier.in_features == 512
    assert build("resnet18", 3, (32, 32)).classifier.in_features == 512
    assert build("resnet18_bn_ap", 3, (32, 32)).classifier.in_features == 512 * 4 * 4
    assert build("resnet18_ap", 1, (28, 28)).classifier.in_features == 512 * 3 * 3
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build("resnet18_bn", 3, (32, 32)).modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in build("vgg11", 3, (32, 32)).modules())


def test_timm_model_trains_a_step_at_28px_one_channel():
    net = build("timm:resnet18", 1, (28, 28))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert net.extract(x).embedding.shape == (4, 512)


def test_timm_vit_takes_img_size_and_kwargs():
    net = build("timm:vit_tiny_patch16_224", 3, (32, 32), {"kwargs": {"patch_size": 4}}).eval()
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10)
    assert torch.allclose(net(x), net.classify(net.extract(x).embedding), atol=1e-5)


def test_timm_unknown_name_and_impossible_size():
    with pytest.raises(PluginError, match="did you mean 'resnet18'"):
        registry.models.get("timm:resnett18")
    with pytest.raises(AtombenchError, match=r"timm:vit_tiny_patch16_224 cannot take 3x8x8 inputs"):
        build("timm:vit_tiny_patch16_224", 3, (8, 8))
