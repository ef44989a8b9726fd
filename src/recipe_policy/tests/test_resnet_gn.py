import pytest
import torch

from recipe_policy.resnet_gn import ResNet18GN


def test_resnet18_gn_shape_params_and_no_batchnorm():
    net = ResNet18GN(in_channels=1, out_dim=64)
    n_params = sum(p.numel() for p in net.parameters())
    # torchvision resnet18 trunk with a 1-channel stem is 11.17M params; plus a 512->64 projection.
    assert 11.1e6 < n_params - (512 * 64 + 64) < 11.3e6
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    out = net(torch.rand(3, 1, 84, 84))
    assert out.shape == (3, 64) and torch.isfinite(out).all()


def test_output_does_not_depend_on_batch_composition():
    # GroupNorm normalizes per sample: a sample's features must not change with its batch mates.
    torch.manual_seed(0)
    net = ResNet18GN(in_channels=1, out_dim=32, widths=(16, 32, 64, 128)).eval()
    x = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[:1], net(x[:1]), rtol=1e-4, atol=1e-5)


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ResNet18GN()(torch.rand(2, 3, 32, 32))
