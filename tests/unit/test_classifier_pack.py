"""Packed downstream classifiers (issue 28): a classifier in a pack is the same classifier trained
alone, to float tolerance, for SimpleCNN and the MLP at a tiny and a realistic size; the evaluation's
packing plan."""
import pytest
import torch

from raygan.classifiers.fit import train_classifier
from raygan.classifiers.pack import PackMember, max_pack_size, solo_reason, train_classifier_pack
from raygan.evaluation.packs import pack_size, plan_units
from raygan.evaluation.units import REFERENCE, evaluation_jobs


def _set(n, shape, seed, k=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = (torch.rand(n, *shape, generator=g) * 2 - 1 + 0.4 * y.view(-1, *[1] * len(shape)) / k).clamp(-1, 1)
    return x, y


@pytest.mark.parametrize("arch,shape,n,epochs,augment", [
    ("simplecnn", (1, 8, 8), 150, 2, "none"),        # digits' size
    ("simplecnn", (3, 32, 32), 70, 1, "flip_crop"),  # CIFAR's, with the augmentation's draws
    ("mlp", (1, 8, 8), 150, 2, "none"),
    ("mlp", (3, 32, 32), 70, 1, "none"),
])
def test_a_packed_classifier_is_the_classifier_alone(arch, shape, n, epochs, augment):
    torch.set_num_threads(1)
    val, test = _set(40, shape, 8), _set(50, shape, 9)
    members = [PackMember(seed=s, train=_set(n, shape, s)) for s in (3, 4, 5)]  # own seed, own set
    settings = dict(val=val, test=test, n_classes=4, arch=arch, epochs=epochs, augment=augment)
    alone = [train_classifier(*m.train, seed=m.seed, **settings) for m in members]
    packed = train_classifier_pack(members, sample_shape=shape, **settings)
    for a, p in zip(alone, packed):
        # Adam turns the rounding noise of a gradient that is zero in exact arithmetic (a convolution's
        # bias before batch norm) into steps of lr (1e-3), so weights agree to a few lr, outputs closer.
        for name, tensor in a.model.state_dict().items():
            torch.testing.assert_close(p.model.state_dict()[name], tensor, atol=3e-3, rtol=1e-3, msg=name)
        with torch.no_grad():
            torch.testing.assert_close(p.model(test[0]), a.model(test[0]), atol=5e-3, rtol=1e-3)
        assert [h["val_acc"] for h in p.history] == [h["val_acc"] for h in a.history]
        assert [h["test_acc"] for h in p.history] == [h["test_acc"] for h in a.history]
        assert [h["train_loss"] for h in p.history] == pytest.approx([h["train_loss"] for h in a.history], rel=1e-3)
        assert (p.best_val_epoch, p.confusion) == (a.best_val_epoch, a.confusion)


def test_shared_epoch_data_is_made_once_per_epoch_and_sizes_must_agree():
    calls = []

    def fresh(epoch):
        calls.append(epoch)
        return _set(64, (1, 8, 8), epoch)

    settings = dict(val=_set(20, (1, 8, 8), 8), test=_set(20, (1, 8, 8), 9), n_classes=4, sample_shape=(1, 8, 8),
                    epochs=2)
    train_classifier_pack([PackMember(seed=s, epoch_data=fresh) for s in range(3)], **settings)
    assert calls == [1, 2]
    with pytest.raises(ValueError, match="sets of one size"):
        train_classifier_pack([PackMember(seed=0, train=_set(64, (1, 8, 8), 0)),
                               PackMember(seed=1, train=_set(65, (1, 8, 8), 1))], **settings)


def test_the_plan_packs_classifiers_apart_from_what_they_need(tiny_digits_cfg):
    from raygan.data import load_dataset

    cfg = tiny_digits_cfg("eval.repeats=3", "ensemble.members=2")
    ds = load_dataset(cfg.data)
    units = plan_units(cfg, ds, evaluation_jobs(cfg, ds))
    assert [len(u.jobs) for u in units] == [9]  # TRTR and T = 1, 2, three repeats each: one pack
    filtered = cfg.replace(eval={"filter_rho": 0.9})
    units = plan_units(filtered, ds, evaluation_jobs(filtered, ds))
    assert [len(u.jobs) for u in units] == [3, 6] and units[1].needs == (REFERENCE,)
    assert [len(u.jobs) for u in plan_units(cfg.replace(eval={"pack_size": 1}), ds, evaluation_jobs(cfg, ds))] == [1] * 9
    assert pack_size(cfg, ds, 9, slots=2) == 5  # spread over the task slots
    resnet = cfg.replace(eval={"arch": "resnet18"})
    assert pack_size(resnet, ds, 9) == 1 == max_pack_size("resnet18", (3, 32, 32), 64)
    assert "ResNet-18 trains alone" in solo_reason("resnet18") and solo_reason("simplecnn") is None


def test_the_dense_convolution_of_small_maps_is_the_grouped_convolution():
    """_dense_conv (SimpleCNN's third convolution on 8 px images: 2 x 2 maps, 32 -> 64 channels) gives
    the grouped convolution's output and gradients; a wrong tap (a flipped kernel) fails it."""
    from raygan.classifiers.pack import _dense_conv

    torch.manual_seed(0)
    P, C, K, B = 4, 32, 64, 16
    for size in ((2, 2), (1, 2), (1, 1)):
        x = torch.randn(B, P * C, *size, requires_grad=True)
        w, b = torch.randn(P, K, C, 3, 3, requires_grad=True), torch.randn(P, K, requires_grad=True)
        ref = torch.nn.functional.conv2d(x, w.flatten(0, 1), b.flatten(), padding=1, groups=P)
        out = _dense_conv(x, w, b)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)
        g = torch.randn_like(ref)
        grads = torch.autograd.grad(ref, (x, w, b), g)
        for got, want in zip(torch.autograd.grad(out, (x, w, b), g), grads):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    x2 = torch.randn(B, P * C, 2, 2)
    ref = torch.nn.functional.conv2d(x2, w.detach().flatten(0, 1), b.detach().flatten(), padding=1, groups=P)
    assert not torch.allclose(_dense_conv(x2, w.detach().flip(-1), b.detach()), ref, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])  # digits (dense third convolution), CIFAR's
def test_one_packed_step_is_each_classifiers_step(shape):
    """The packed forward (ReLU after max-pooling, the dense product on 2 x 2 maps) and its gradient
    are each SimpleCNN's alone at the sizes users run: logits within 1e-5 and every gradient within
    1e-4 of its scale."""
    import torch.nn.functional as F

    from raygan.classifiers.networks import build_classifier
    from raygan.classifiers.pack import _forward, _layout
    from raygan.gan.stack import Context, Stack

    modules = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        modules.append(build_classifier("simplecnn", shape, 10))
    stack = Stack(modules)
    for m in (*modules, stack.template):
        m.train()
        m.head[3].eval()  # dropout off: its draws are the pack's other test's business
    x, y = torch.rand(3, 32, *shape) * 2 - 1, torch.randint(0, 10, (3, 32))
    logits = _forward("simplecnn", Context(stack, [torch.Generator()] * 3), _layout("simplecnn", x))
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1).sum().backward()
    for p, m in enumerate(modules):
        alone = m(x[p])
        F.cross_entropy(alone, y[p]).backward()
        torch.testing.assert_close(logits[p], alone, atol=1e-5 * alone.abs().max().item(), rtol=0)
        for name, param in m.named_parameters():
            scale = param.grad.abs().max().clamp_min(1e-3)
            torch.testing.assert_close(stack.params[name].grad[p] / scale, param.grad / scale, atol=1e-4, rtol=0,
                                       msg=name)
