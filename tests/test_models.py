"""Model plug-ins: every registered model builds at the literature's input sizes and honours the FeatureNet hook
(``forward(x) == classify(extract(x).embedding)``); the ConvNet and the CIFAR-size nets are the reference's
(``docs/networks.md``); timm models by name, with img_size, kwargs and clear errors."""

import pytest
import torch
import torch.nn.functional as F

from atombench import registry
from atombench.errors import AtombenchError, PluginError
from atombench.models.base import FeatureNet

NAMES = [n for n in registry.models.names() if n != "timm"]
SIZES = [(3, (32, 32)), (1, (28, 28)), (3, (64, 64))]  # CIFAR, MNIST, Tiny-ImageNet


def build(name, channels, size, options=None, classes=10):
    """As users load models: by registry name, then ``build(options, channels, num_classes, image_size)``."""
    family = registry.models.get(name)
    return family.build(options, channels, classes, size)


def check_hook(net, channels, size, classes=10, batch=2):
    """The FeatureNet contract on one random batch, in eval mode; returns the Features."""
    net.eval()
    x = torch.randn(batch, channels, *size)
    with torch.no_grad():
        feats = net.extract(x)
        logits = net(x)
        again = net.classify(feats.embedding)
    assert isinstance(feats.maps, list) and all(m.ndim == 4 and m.shape[0] == batch for m in feats.maps)
    assert feats.embedding.ndim == 2 and feats.embedding.shape[0] == batch
    assert logits.shape == (batch, classes)
    assert torch.allclose(logits, again, atol=1e-5), (logits - again).abs().max()
    return feats


# -- every registered model ----------------------------------------------------------------------------------
def test_the_cifar_nets_are_registered():
    for name in ["mlp", "lenet", "alexnet", "alexnet_bn", "vgg11", "vgg11_bn", "resnet18", "resnet18_bn",
                 "resnet18_ap", "resnet18_bn_ap", "timm"]:
        assert name in registry.models.names()
    assert "BatchNorm" in registry.models.get("vgg11_bn").description
    assert "VGG11BN" in registry.models.get("vgg11_bn").description
    assert "ResNet18BN_AP" in registry.models.get("resnet18_bn_ap").description


@pytest.mark.parametrize("channels, size", SIZES, ids=["cifar", "mnist", "tiny"])
@pytest.mark.parametrize("name", NAMES)
def test_every_model_builds_and_exposes_features(name, channels, size):
    torch.manual_seed(0)
    net = build(name, channels, size)
    assert isinstance(net, FeatureNet)
    feats = check_hook(net, channels, size)
    if name != "mlp":
        assert feats.maps, "a convolutional network exposes its feature maps"


def test_models_build_deterministically_under_a_seed():
    for name in ["convnet", "resnet18_bn_ap", "vgg11"]:
        torch.manual_seed(3)
        a = build(name, 3, (32, 32))
        torch.manual_seed(3)
        b = build(name, 3, (32, 32))
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# -- ConvNet (section 1.1) -----------------------------------------------------------------------------------
def test_convnet_is_the_reference():
    net = build("convnet", 3, (32, 32))
    assert net.embed_dim == 2048 and len(net.blocks) == 3
    norm = net.blocks[0][1]
    assert isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == norm.num_channels == 128 and norm.affine
    assert net.blocks[0][0].padding == (1, 1)
    assert net.extract(torch.randn(2, 3, 32, 32)).embedding.shape == (2, 2048)
    mnist = build("convnet", 1, (28, 28))
    assert mnist.blocks[0][0].padding == (3, 3) and mnist.embed_dim == 2048  # the 1-channel quirk
    feats = mnist.extract(torch.randn(1, 1, 28, 28))
    assert [tuple(m.shape[-2:]) for m in feats.maps] == [(32, 32), (16, 16), (8, 8)]
    assert feats.embedding.shape == (1, 2048)
    assert isinstance(build("convnet_bn", 3, (32, 32)).blocks[0][1], torch.nn.BatchNorm2d)
    assert len(build("convnet_d4", 3, (32, 32)).extract(torch.randn(1, 3, 32, 32)).maps) == 4
    assert build("convnet_w64", 3, (32, 32)).embed_dim == 64 * 16
    assert build("convnet", 3, (64, 64)).embed_dim == 128 * 8 * 8  # Tiny-ImageNet


# -- CIFAR-size nets (section 1.2) ---------------------------------------------------------------------------
def test_mlp_and_lenet():
    mlp = build("mlp", 3, (32, 32))
    assert [m.in_features for m in mlp.hidden if isinstance(m, torch.nn.Linear)] == [32 * 32 * 3, 128]
    assert mlp.classifier.in_features == 128
    assert build("mlp", 1, (28, 28)).hidden[0].in_features == 28 * 28
    for channels, size in [(3, (32, 32)), (1, (28, 28))]:
        lenet = build("lenet", channels, size)
        assert lenet.body.blocks[0][0].padding == ((2, 2) if channels == 1 else (0, 0))
        assert [m.in_features for m in lenet.hidden if isinstance(m, torch.nn.Linear)] == [400, 120]
        assert lenet.classifier.in_features == 84
        assert len(lenet.extract(torch.randn(1, channels, *size)).maps) == 2


def test_alexnet_and_vgg11_heads_and_norms():
    for channels, size in [(3, (32, 32)), (1, (28, 28))]:
        alex = build("alexnet", channels, size)
        assert alex.classifier.in_features == 192 * 4 * 4
        assert alex.body.blocks[0][0].padding == ((4, 4) if channels == 1 else (2, 2))
        vgg = build("vgg11_bn", channels, size)
        assert vgg.classifier.in_features == 512
        assert vgg.body.blocks[0][0].padding == ((3, 3) if channels == 1 else (1, 1))
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in alex.modules())
    alex_bn = build("alexnet_bn", 3, (32, 32))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in alex_bn.modules()) == 5
    maps = alex_bn.extract(torch.randn(2, 3, 32, 32)).maps
    assert [m.shape[1] for m in maps] == [128, 192, 256, 192, 192]
    assert all((m >= 0).all() for m in maps)  # post-activation
    vgg = build("vgg11", 3, (32, 32))
    norms = [m for m in vgg.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 8 and all(n.num_groups == n.num_channels and n.affine for n in norms)
    assert [m.shape[-1] for m in vgg.extract(torch.randn(1, 3, 32, 32)).maps] == [32, 16, 8, 8, 4, 4, 2, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in build("vgg11_bn", 3, (32, 32)).modules()) == 8
    assert build("vgg11", 3, (64, 64)).classifier.in_features == 512 * 2 * 2


def test_resnet18_variants():
    net = build("resnet18", 3, (32, 32))
    assert net.classifier.in_features == 512
    assert net.stem[0].stride == (1, 1) and net.stem[0].kernel_size == (3, 3)
    maps = net.extract(torch.randn(1, 3, 32, 32)).maps
    assert [tuple(m.shape[1:]) for m in maps] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    bn = build("resnet18_bn", 3, (32, 32))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in bn.modules())
    assert build("resnet18", 1, (28, 28)).classifier.in_features == 512
    assert build("resnet18", 3, (64, 64)).classifier.in_features == 512 * 2 * 2
    assert build("resnet18_bn_ap", 3, (32, 32)).classifier.in_features == 512 * 4 * 4
    assert build("resnet18_ap", 1, (28, 28)).classifier.in_features == 512 * 3 * 3
    ap = build("resnet18_ap", 3, (32, 32))
    assert all(m.stride == (1, 1) for m in ap.modules() if isinstance(m, torch.nn.Conv2d))


def test_resnet18_ap_block_pools_after_norm_and_relu():
    """BasicBlock_AP of the DC code: relu(bn1(conv1(x))) -> avg_pool 2x2 -> bn2(conv2) + shortcut -> relu."""
    torch.manual_seed(0)
    block = build("resnet18_bn_ap", 3, (32, 32)).stages[1][0].eval()
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        out = F.avg_pool2d(F.relu(block.bn1(block.conv1(x))), 2, 2)
        out = block.bn2(block.conv2(out))
        sc = block.shortcut
        ref = F.relu(out + sc[2](F.avg_pool2d(sc[0](x), 2, 2)))
        assert torch.allclose(block(x), ref, atol=1e-6)
        assert block(x).shape == (2, 128, 8, 8)


def test_impossible_input_sizes_are_one_line_errors():
    with pytest.raises(AtombenchError, match=r"alexnet cannot take 3x4x4 inputs"):
        build("alexnet", 3, (4, 4))


# -- timm ----------------------------------------------------------------------------------------------------
def test_timm_namespace_description():
    assert dict(registry.models.describe_all())["timm"] == (
        "any timm model as timm:<name> (pretrained=False; img_size passed where the model takes one)")
    # the namespace is not a model: naming it alone is one line pointing at timm:<name>
    with pytest.raises(PluginError, match=r"model 'timm' is a namespace, not a model: name one of its models as "
                                          r"'timm:<name>' \(e.g. 'timm:resnet18'\)"):
        registry.models.get("timm")


def test_timm_model_trains_a_step_at_28px_one_channel():
    torch.manual_seed(0)
    net = build("timm:resnet18", 1, (28, 28))
    assert net.timm_name == "resnet18" and net.training
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    before = net.model.get_classifier().weight.clone()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, net.model.get_classifier().weight)
    feats = net.extract(x)
    assert feats.embedding.shape == (4, 512)
    assert feats.maps and all(m.ndim == 4 for m in feats.maps)


@pytest.mark.parametrize("name, channels, size, options", [
    ("resnet18", 3, (32, 32), None),
    ("convnext_atto", 3, (32, 32), None),
    ("efficientnet_b0", 3, (32, 32), None),
    ("mobilenetv3_small_050", 1, (28, 28), None),
    ("regnetx_002", 3, (64, 64), None),
    ("vit_tiny_patch16_224", 3, (32, 32), {"kwargs": {"patch_size": 4}}),
    ("deit_tiny_patch16_224", 3, (32, 32), {"kwargs": {"patch_size": 4}}),
], ids=["resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3", "regnetx", "vit_tiny", "deit_tiny"])
def test_timm_models_honour_the_hook(name, channels, size, options):
    torch.manual_seed(0)
    net = build(f"timm:{name}", channels, size, options)
    feats = check_hook(net, channels, size)
    assert feats.maps
    x = torch.randn(2, channels, *size)
    with torch.no_grad():
        assert torch.equal(net(x), net.model(x))  # forward is exactly timm's logits


def test_timm_img_size_is_passed_where_the_model_takes_one():
    vit = build("timm:vit_tiny_patch16_224", 3, (32, 32), {"kwargs": {"patch_size": 4}})
    assert vit.model.patch_embed.grid_size == (8, 8)
    maps = vit.extract(torch.randn(2, 3, 32, 32)).maps
    assert len(maps) == 12 and all(tuple(m.shape[1:]) == (192, 8, 8) for m in maps)  # tokens as NCHW
    mixer = build("timm:mixer_b16_224", 3, (32, 32))
    assert mixer.model.stem.grid_size == (2, 2)
    check_hook(mixer, 3, (32, 32))


def test_timm_unknown_name_and_impossible_size():
    with pytest.raises(PluginError, match="did you mean 'resnet18'"):
        registry.models.get("timm:resnett18")
    with pytest.raises(AtombenchError, match=r"timm:vit_tiny_patch16_224 cannot take 3x8x8 inputs.*larger image size"):
        build("timm:vit_tiny_patch16_224", 3, (8, 8))
    with pytest.raises(AtombenchError, match=r"timm:resnet18 could not be created.*no_such_option"):
        build("timm:resnet18", 3, (32, 32), {"kwargs": {"no_such_option": 1}})


def test_a_model_too_deep_for_the_images_is_one_line_with_the_fix_naming_the_suites_model(tmp_path, capsys):
    """ResNet18 on 8x8 digits failed with GroupNorm's bare ValueError (no fix); VGG11-BN was called vgg11."""
    from atombench.cli import main

    suite = tmp_path / "s.yaml"
    suite.write_text("datasets: [digits]\nipc: [1]\ndistillers: [random]\nmodels: [resnet18, vgg11_bn]\n")
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"error: {suite}: models[0]: resnet18 cannot take 1x8x8 inputs (")
    assert err[1].startswith(f"error: {suite}: models[1]: vgg11_bn: vgg11 cannot take 1x8x8 inputs (")
    assert all(line.endswith("give the dataset a larger image size (its 'size' or 'image_size' option) or choose "
                             "another model") for line in err)
