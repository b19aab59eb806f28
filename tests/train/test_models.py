import pytest
import torch
from torch import nn

from fundusrt.train.models import create_model, list_models, load_model, save_checkpoint
from fundusrt.train.models.cenet import CENet, DACBlock, RMPBlock

# Small inputs each model accepts: CE-Net needs a side >= 192 and a multiple of 32.
SIZES = {"cenet_resnet34": 192, "unet_locator": 64}
OUTPUTS = {"cenet_resnet34": (2, 2, 192, 192), "unet_locator": (2, 1, 64, 64)}


def test_registry_lists_the_three_families():
    names = list_models()
    assert {"resnet50_gap", "resnet50_2gap", "resnet50_3gap", "resnet50_cc", "unet_locator"} <= set(names)
    assert any("cenet" in n for n in names)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet18'.*cenet_resnet34.*unet_locator"):
        create_model("resnet18")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    kwargs = {"base": 8} if name == "unet_locator" else {}
    model = create_model(name, **kwargs)
    size = SIZES.get(name, 64)
    x = torch.randn(2, 3, size, size)
    y = model(x)
    assert tuple(y.shape) == OUTPUTS.get(name, (2, 2))
    y.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        p = model.predict(x)
    assert p.min() >= 0 and p.max() <= 1
    assert model.builder == {"name": name, "kwargs": kwargs}


def test_classifier_heads_pool_the_stages_the_seed_names():
    assert create_model("resnet50_gap").fc.in_features == 2048
    assert create_model("resnet50_2gap").fc.in_features == 1024 + 2048
    assert create_model("resnet50_3gap").fc.in_features == 512 + 1024 + 2048
    cc = create_model("resnet50_cc")
    assert isinstance(cc.compress[0], nn.Conv2d) and cc.compress[0].kernel_size == (1, 1)
    assert cc.compress[0].in_channels == 2048 and cc.fc.in_features == cc.compress[0].out_channels


def test_class_activation_maps_average_to_the_logit_difference():
    torch.manual_seed(0)
    for name in ("resnet50_gap", "resnet50_cc"):
        net = create_model(name).eval()
        x = torch.randn(2, 3, 96, 96)
        with torch.no_grad():
            stages = net.stages(x)
            cam, logits = net.class_activation_map(stages), net(x)
        assert cam.shape == (2, 3, 3)  # the last stage: a 32nd of the input
        torch.testing.assert_close(cam.mean(dim=(1, 2)), logits[:, 1] - logits[:, 0], rtol=1e-4, atol=1e-5)
    for name in ("resnet50_2gap", "resnet50_3gap"):  # heads over several stages have no exact map
        net = create_model(name)
        assert not net.has_cam
        with pytest.raises(ValueError, match="no exact class activation map"):
            net.class_activation_map(net.stages(torch.randn(1, 3, 64, 64)))


def test_cenet_matches_the_reference_structure():
    net = create_model("cenet_resnet34")
    assert isinstance(net, CENet)
    # ResNet34 encoder: 3, 4, 6, 3 basic blocks with 64, 128, 256, 512 filters.
    assert [len(e) for e in (net.encoder1, net.encoder2, net.encoder3, net.encoder4)] == [3, 4, 6, 3]
    assert [e[-1].conv2.out_channels for e in (net.encoder1, net.encoder2, net.encoder3, net.encoder4)] == [
        64,
        128,
        256,
        512,
    ]
    # DAC: four convs 512->512 with bias, no BatchNorm, dilations 1, 3, 5 and a 1x1.
    dac = net.dac
    assert isinstance(dac, DACBlock) and not any(isinstance(m, nn.BatchNorm2d) for m in dac.modules())
    convs = [dac.dilate1, dac.dilate3, dac.dilate5, dac.conv1x1]
    assert [c.dilation[0] for c in convs[:3]] == [1, 3, 5] and dac.conv1x1.kernel_size == (1, 1)
    assert all(c.bias is not None and c.in_channels == c.out_channels == 512 for c in convs)
    assert len([m for m in dac.modules() if isinstance(m, nn.Conv2d)]) == 4  # shared across branches
    # RMP: one shared 1x1 conv 512 -> 1, kernels 2, 3, 5, 6; output 516 channels.
    assert isinstance(net.rmp, RMPBlock) and net.rmp.kernels == (2, 3, 5, 6)
    assert [m for m in net.rmp.modules() if isinstance(m, nn.Conv2d)] == [net.rmp.conv]
    assert net.rmp.conv.in_channels == 512 and net.rmp.conv.out_channels == 1
    assert net.rmp(torch.randn(1, 512, 6, 6)).shape[1] == 516
    # Decoders 516->256, 256->128, 128->64, 64->64, each 1x1 / transposed 3x3 stride 2 / 1x1.
    for block, (cin, cout) in zip(
        (net.decoder4, net.decoder3, net.decoder2, net.decoder1), ((516, 256), (256, 128), (128, 64), (64, 64))
    ):
        first, deconv, last = block[0], block[3], block[6]
        assert (first.in_channels, first.out_channels, last.out_channels) == (cin, cin // 4, cout)
        assert isinstance(deconv, nn.ConvTranspose2d) and deconv.kernel_size == (3, 3) and deconv.stride == (2, 2)
    # Head: transposed 4x4 stride 2 64->32, ReLU, 3x3 32->32, ReLU, 3x3 32->2.
    head = net.head
    assert isinstance(head[0], nn.ConvTranspose2d) and head[0].kernel_size == (4, 4) and head[0].out_channels == 32
    assert head[2].kernel_size == (3, 3) and head[4].out_channels == 2


def test_cenet_refuses_sizes_the_rmp_block_cannot_take():
    net = create_model("cenet_resnet34")
    with pytest.raises(ValueError, match="multiple of 32"):
        net(torch.randn(1, 3, 160, 160))
    with pytest.raises(ValueError, match="multiple of 32"):
        net(torch.randn(1, 3, 200, 200))


def test_cenet_skips_are_additions():
    net = create_model("cenet_resnet34").eval()
    seen = {}
    # (dict.update returns None: a forward hook that returned a value would replace the output)
    net.decoder4.register_forward_hook(lambda m, i, o: seen.update(d4=o))
    net.encoder3.register_forward_hook(lambda m, i, o: seen.update(e3=o))
    net.decoder3.register_forward_hook(lambda m, i, o: seen.update(d3_input=i[0]))
    with torch.no_grad():
        net(torch.randn(1, 3, 192, 192))
    assert torch.allclose(seen["d3_input"], seen["d4"] + seen["e3"])


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet_locator", base=8).eval()
    path = tmp_path / "m.pt"
    preprocess = {"size": 64, "normalization": {"mean": [0.5] * 3, "std": [0.2] * 3, "per_image": True}}
    save_checkpoint(path, model, preprocess=preprocess, task="locate", epoch=3, metrics={"score": 1.5})
    loaded, payload = load_model(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert payload["model"] == {"name": "unet_locator", "kwargs": {"base": 8}}
    assert payload["preprocess"] == preprocess and payload["epoch"] == 3
    torch.load(path, weights_only=True)  # nothing but tensors and plain values inside
