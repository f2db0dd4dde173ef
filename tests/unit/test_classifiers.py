"""raygan.classifiers.networks (downstream archs) and raygan.classifiers.augment: shapes, the seeds' architectures,
registry errors, SimpleCNN learning a toy, and augmentations that are seeded, in range and do what
they say."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.classifiers.augment import AUGMENTATIONS, augment, crop, default_pad, flip_crop, pathology_jitter
from raygan.classifiers.networks import DOWNSTREAM, LiuHuMLP, ResNet18Small, SimpleCNN, build_classifier


@pytest.mark.parametrize("arch", sorted(DOWNSTREAM))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_downstream_arch_emits_one_logit_per_class(arch, shape):
    torch.manual_seed(0)
    model = build_classifier(arch, shape, 5)
    model.train()  # batch norm in train mode: the shapes must also work while learning
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_mlp_is_the_only_arch_for_points():
    model = build_classifier("mlp", (2,), 25)
    assert model(torch.randn(4, 2)).shape == (4, 25)
    for arch in ("simplecnn", "resnet18"):
        with pytest.raises(ValueError, match="mlp"):
            build_classifier(arch, (2,), 25)


def test_unknown_arch_names_the_allowed_ones():
    with pytest.raises(ValueError, match="resnet18") as info:
        build_classifier("vgg", (1, 8, 8), 2)
    assert "simplecnn" in str(info.value) and "mlp" in str(info.value) and "vgg" in str(info.value)


def test_resnet18_small_has_a_3x3_stride1_stem_and_no_max_pool():
    model = ResNet18Small(in_channels=1, n_classes=7)
    assert isinstance(model.conv1, nn.Conv2d)
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 64
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.fc.out_features == 7
    # Otherwise torchvision's resnet18: 4 stages of 2 basic blocks.
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]


def test_liu_hu_mlp_has_one_sigmoid_hidden_layer_of_300():
    model = LiuHuMLP(in_features=784, n_classes=10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 300), (300, 10)]
    assert sum(isinstance(m, nn.Sigmoid) for m in model.modules()) == 1
    assert not any(isinstance(m, (nn.ReLU, nn.Softmax)) for m in model.modules())
    x = torch.randn(3, 1, 28, 28)
    expected = linears[1](torch.sigmoid(linears[0](x.flatten(1))))
    torch.testing.assert_close(model(x), expected)


def test_simplecnn_with_n_classes_outputs():
    model = build_classifier("simplecnn", (3, 32, 32), 10)
    assert isinstance(model, SimpleCNN)
    assert model.head[-1].out_features == 10


def test_simplecnn_learns_an_easy_two_class_problem():
    gen = torch.Generator().manual_seed(0)
    n = 128
    y = torch.arange(n) % 2
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=gen) - 0.5
    x[y == 0, :, :, :4] += 1.0   # class 0: bright left half
    x[y == 1, :, :, 4:] += 1.0   # class 1: bright right half
    torch.manual_seed(0)
    model = build_classifier("simplecnn", (1, 8, 8), 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(5):
        model.train()
        for idx in torch.randperm(n, generator=gen).split(32):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9


# --- augmentations -------------------------------------------------------------------------------

def _batch(c=3, h=8, w=8, b=16, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (3, 32, 32)])
def test_augmentations_keep_shape_and_range_and_are_seeded(name, shape):
    x = _batch(*shape)
    a = augment(name, x, torch.Generator().manual_seed(1))
    b = augment(name, x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if name != "none":
        assert not torch.equal(a, augment(name, x, torch.Generator().manual_seed(2)))
        assert not torch.equal(a, x)


def test_augment_does_not_touch_the_global_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    for name in AUGMENTATIONS:
        augment(name, _batch(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.rand(3), expected)


def test_unknown_augmentation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="flip_crop"):
        augment("mixup", _batch(), torch.Generator())


def _left_column_image(b=64, c=1, size=8):
    x = -torch.ones(b, c, size, size)
    x[..., 0] = 1.0
    return x


def test_flip_crop_flips_some_samples_left_right():
    x = _left_column_image()
    out = flip_crop(x, torch.Generator().manual_seed(0), pad=0)
    bright_right = (out[..., -1] == 1).all(dim=(1, 2))
    bright_left = (out[..., 0] == 1).all(dim=(1, 2))
    assert 10 < bright_right.sum() < 54
    assert torch.equal(bright_right, ~bright_left)
    assert torch.equal(out[bright_right], x[bright_right].flip(-1))


def test_flip_crop_crops_are_shifted_windows_of_the_padded_image():
    x = _batch(c=1, h=8, w=8, b=64)
    pad = default_pad(8, 8)
    assert pad == 1 and default_pad(28, 28) == 3 and default_pad(32, 32) == 4
    out = flip_crop(x, torch.Generator().manual_seed(3), padding_mode="constant")
    padded = F.pad(torch.cat([x, x.flip(-1)]), (pad, pad, pad, pad), value=-1.0)
    shifts = set()
    for i in range(len(x)):
        found = [(k, dy, dx) for k in (i, i + len(x)) for dy in range(3) for dx in range(3)
                 if torch.equal(padded[k, :, dy:dy + 8, dx:dx + 8], out[i])]
        assert found, f"sample {i} is not a crop of its (possibly flipped) padded image"
        shifts.add(found[0][1:])
    assert len(shifts) > 4  # offsets really vary


def test_crop_shifts_but_never_mirrors():
    x = _left_column_image()
    x[:, :, 0, :] = -1.0  # a bright left column, rows 1..7 only: a mirror would move it to the right
    out = crop(x, torch.Generator().manual_seed(3))
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifts = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(3) for dx in range(3)
                 if torch.equal(padded[i, :, dy:dy + 8, dx:dx + 8], out[i])]
        assert found, f"sample {i} is not an unmirrored crop of its padded image"
        shifts.add(found[0])
    assert len(shifts) > 4
    assert not (out[..., -1] == 1).all(dim=(1, 2)).any()  # no sample has the column at the right


def test_pathology_jitter_flips_both_ways():
    x = -torch.ones(64, 1, 8, 8)
    x[:, :, 0, 0] = 1.0  # one bright corner: where it lands tells both flips
    out = pathology_jitter(x, torch.Generator().manual_seed(0), brightness=0, contrast=0)
    corners = {(0, 0): 0, (0, 7): 0, (7, 0): 0, (7, 7): 0}
    for img in out[:, 0]:
        r, c = divmod(int(img.argmax()), 8)
        corners[(r, c)] += 1
    assert all(count > 0 for count in corners.values()), corners


def test_pathology_jitter_changes_colour_of_rgb_and_keeps_grey_in_range():
    gen = torch.Generator().manual_seed(0)
    rgb = _batch(c=3, h=8, w=8, b=8) * 0.8
    out = pathology_jitter(rgb, gen)
    # Undo the flips by trying all four: the pixel values must still differ (colour jitter).
    candidates = [rgb, rgb.flip(-1), rgb.flip(-2), rgb.flip(-1).flip(-2)]
    min_diff = torch.stack([(out - c).abs().amax(dim=(1, 2, 3)) for c in candidates]).min(0).values
    assert (min_diff > 1e-3).all()
    # Hue alone moves colours but leaves grey pixels (R = G = B, no chroma) where they are.
    hue_only = pathology_jitter(rgb, torch.Generator().manual_seed(0), brightness=0, contrast=0,
                                saturation=0, hue=0.5)
    min_diff = torch.stack([(hue_only - c).abs().amax(dim=(1, 2, 3)) for c in candidates]).min(0).values
    assert (min_diff > 1e-3).all()
    flat_grey = rgb[:, :1].expand(-1, 3, -1, -1).contiguous()
    out_flat = pathology_jitter(flat_grey, torch.Generator().manual_seed(0), brightness=0, contrast=0,
                                saturation=0.5, hue=0.5)
    torch.testing.assert_close(out_flat[:, 1], out_flat[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_flat[:, 2], out_flat[:, 0], atol=1e-5, rtol=0)
    grey = _batch(c=1, h=8, w=8, b=32)
    out_grey = pathology_jitter(grey, torch.Generator().manual_seed(0), brightness=0.9, contrast=0.9)
    assert out_grey.shape == grey.shape
    assert out_grey.min() >= -1 and out_grey.max() <= 1
    assert not torch.equal(out_grey, grey)


def test_hue_shift_matches_torchvision_adjust_hue_per_sample():
    from torchvision.transforms.v2.functional import adjust_hue

    from raygan.classifiers.augment import _shift_hue

    u = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    u[0] = u[0, :1]      # a grey image: no hue to move
    u[1, :, :2] = 0.0    # black pixels
    turns = torch.tensor([0.3, -0.05, 0.25, -0.5])
    out = _shift_hue(u, turns)
    for i in range(len(u)):
        torch.testing.assert_close(out[i], adjust_hue(u[i], float(turns[i])), atol=1e-5, rtol=0)
