"""NeuroRefocusNet / NeuroMergeNet: the layer table of the paper (Tables 6, 7), shapes and invariants."""
import pytest
import torch

from nfs_synth.aif.nets import (DenseBlock, NeuroMergeNet, NeuroRefocusNet, build, count_parameters,
                                pad_to_multiple)
from nfs_synth.aif.representations import luma_chroma_merge

torch.set_num_threads(1)  # the CI box is shared: more threads oversubscribe it

# (module path, in channels, out channels, kernel, stride) for every row of the paper's tables
TABLE6 = [
    ("image_encoder.level1.0.0", 3, 64, 3, 1), ("image_encoder.level1.1", 64, 128, None, None),
    ("image_encoder.level2.0.0", 128, 128, 2, 2), ("image_encoder.level2.1", 128, 256, None, None),
    ("image_encoder.level3.0.0", 256, 256, 2, 2), ("image_encoder.level3.1", 256, 512, None, None),
    ("nfs_encoder.level1.0.0", 64, 64, 3, 1), ("nfs_encoder.level1.1", 64, 128, None, None),
    ("nfs_encoder.level2.0.0", 128, 128, 2, 2), ("nfs_encoder.level2.1", 128, 256, None, None),
    ("nfs_encoder.level3.0.0", 256, 256, 2, 2), ("nfs_encoder.level3.1", 256, 512, None, None),
    ("decoder.deconv2.0", 1024, 256, 2, 2), ("decoder.conv5.0.0", 768, 128, 1, 1),
    ("decoder.conv5.1", 128, 256, None, None), ("decoder.deconv1.0", 256, 128, 2, 2),
    ("decoder.conv6.0", 384, 64, 1, 1), ("decoder.tail.0", 64, 64, None, None),
    ("decoder.tail.1", 64, 64, None, None), ("decoder.tail.2", 64, 3, 3, 1),
]
TABLE7 = [
    ("encoder.level1.0.0", 4, 64, 3, 1), ("encoder.level1.1", 64, 128, None, None),
    ("encoder.level2.0.0", 128, 128, 2, 2), ("encoder.level2.1", 128, 256, None, None),
    ("encoder.level3.0.0", 256, 256, 2, 2), ("encoder.level3.1", 256, 512, None, None),
    ("decoder.deconv2.0", 512, 256, 2, 2), ("decoder.conv5.0.0", 512, 128, 1, 1),
    ("decoder.conv5.1", 128, 256, None, None), ("decoder.deconv1.0", 256, 128, 2, 2),
    ("decoder.conv6.0", 256, 64, 1, 1), ("decoder.tail.0", 64, 64, None, None),
    ("decoder.tail.1", 64, 1, None, None),
]
# parameter counts at width 1.0, printed in docs/networks.md
PARAMS = {"refocus": 4_898_243, "merge": 2_675_586}


def _channels(module):
    if isinstance(module, DenseBlock):
        cin = module.layers[0][0][0].in_channels
        return cin, cin + sum(layer[1][0].out_channels for layer in module.layers)
    convs = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    return convs[0].in_channels, convs[-2 if len(convs) == 3 else -1].out_channels  # skip a 1x1 projection


@pytest.mark.parametrize("net, table", [(NeuroRefocusNet("events"), TABLE6), (NeuroMergeNet(), TABLE7)],
                         ids=["table6", "table7"])
def test_layers_match_paper_tables(net, table):
    modules = dict(net.named_modules())
    for name, cin, cout, kernel, stride in table:
        module = modules[name]
        assert _channels(module) == (cin, cout), name
        if kernel is not None:
            assert module.kernel_size == (kernel, kernel) and module.stride == (stride, stride), name


def test_parameter_counts():
    assert count_parameters(NeuroRefocusNet("events")) == PARAMS["refocus"]
    assert count_parameters(NeuroRefocusNet("spikes")) == PARAMS["refocus"]
    assert count_parameters(NeuroMergeNet()) == PARAMS["merge"]


@pytest.mark.parametrize("modality", ["events", "spikes"])
def test_refocus_shapes_and_range(modality):
    net = NeuroRefocusNet(modality, width=1 / 16).eval()
    image, nfs = torch.rand(2, 3, 24, 32), torch.randn(2, 64, 24, 32).clamp(min=0)
    out = net(image, nfs)
    assert out.shape == (2, 3, 24, 32) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        net(image[..., :30], nfs[..., :30])
    with pytest.raises(ValueError, match="expected nfs"):
        net(image, nfs[:, :10])


@pytest.mark.parametrize("n", [2, 5, 17])
def test_merge_any_stack_size_weights_sum_to_one(n):
    net = NeuroMergeNet(width=1 / 16, alpha=2.0).eval()
    stack, nfs = torch.rand(2, n, 3, 16, 20), torch.rand(2, n, 1, 16, 20)
    merged, weights = net(stack, nfs)
    assert merged.shape == (2, 3, 16, 20) and weights.shape == (2, n, 16, 20)
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 16, 20))
    assert (weights >= 0).all()
    # a permutation of the stack permutes the weights: the net treats every image alike
    perm = torch.randperm(n)
    _, w_perm = net(stack[:, perm], nfs[:, perm])
    torch.testing.assert_close(w_perm, weights[:, perm], rtol=1e-4, atol=1e-5)


def test_merge_of_identical_images_is_that_image():
    stack = torch.rand(1, 1, 3, 8, 8).expand(1, 3, 3, 8, 8)
    merged, _ = NeuroMergeNet(width=1 / 16).eval()(stack, torch.rand(1, 3, 1, 8, 8))
    torch.testing.assert_close(merged, stack[:, 0])


def test_luma_chroma_merge_keeps_grey_and_chroma():
    grey = torch.full((1, 3, 2, 2), 0.5)
    out = luma_chroma_merge(torch.full((1, 1, 2, 2), 0.18), grey)  # linear 0.18 ~ sRGB 0.46
    torch.testing.assert_close(out, torch.full_like(out, 0.4614), atol=1e-3, rtol=0)
    red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1)
    out = luma_chroma_merge(torch.full((1, 1, 1, 1), 0.5), red)
    assert out[0, 0] > out[0, 1] + 0.3  # still red


def test_group_norm_nets_are_the_same_in_training_and_inference_and_per_image():
    # GroupNorm has no running statistics: an image's output does not depend on the other images in
    # its batch nor on train()/eval(), where batch norm's depends on both (the bright-scene failure of
    # docs/networks.md, "Normalisation").
    torch.manual_seed(0)
    image, nfs = torch.rand(2, 3, 16, 16), (torch.rand(2, 64, 16, 16) < 0.3).float()
    nfs[1] = 1.0  # a saturated spike stream beside an ordinary one
    for norm in ("group", "batch"):
        net = build("refocus", "spikes", 1 / 16, norm=norm)
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == (norm == "batch")
        with torch.no_grad():
            alone = net.train()(image[:1], nfs[:1])
            together = net(image, nfs)[:1]
            inference = net.eval()(image[:1], nfs[:1])
        same = torch.allclose(alone, together, atol=1e-5) and torch.allclose(alone, inference, atol=1e-5)
        assert same == (norm == "group"), norm
    # the same layers and parameter count as the paper's nets: a norm layer has 2 parameters per channel
    assert count_parameters(build("refocus", "events", 1.0, norm="group")) == PARAMS["refocus"]
    assert count_parameters(build("merge", "events", 1.0, norm="group")) == PARAMS["merge"]


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="modality"):
        NeuroRefocusNet("frames")
    with pytest.raises(ValueError, match="width"):
        NeuroMergeNet(width=0.01)
    with pytest.raises(ValueError, match="alpha"):
        NeuroMergeNet(alpha=0)
    with pytest.raises(ValueError, match="norm must be one of"):
        build("refocus", "events", 1 / 16, norm="layer")


def test_pad_to_multiple():
    x, size = pad_to_multiple(torch.rand(1, 2, 3, 10, 13))
    assert x.shape == (1, 2, 3, 12, 16) and size == (10, 13)
