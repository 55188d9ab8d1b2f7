"""CoinYearNet: every variant runs on the CPU; BN momentum; grayscale; local weights; year scaling."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torchvision import models as tv_models

from training.ml.config import seed_regression
from training.ml.model import build_model, denormalise_year, normalise_year


@pytest.mark.parametrize("grayscale", [False, True])
@pytest.mark.parametrize("mode", ["shared", "dual"])
@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18"])
def test_every_variant_runs_a_cpu_forward_pass(backbone, mode, grayscale):
    # given a small config of this variant
    config = seed_regression(backbone=backbone, mode=mode, grayscale=grayscale, image_size=32, head_hidden=16)
    torch.manual_seed(0)
    model = build_model(config)
    channels = 1 if grayscale else 3
    front, back = torch.randn(3, channels, 32, 32), torch.randn(3, channels, 32, 32)
    # when it predicts in training and in eval mode
    train_out = model(front, back)
    model.eval()
    with torch.inference_mode():
        eval_out = model(front, back)
        years = model.predict_years(front, back)
    # then there is one finite value per coin
    for out in (train_out, eval_out, years):
        assert out.shape == (3,)
        assert torch.isfinite(out).all()


def test_shared_mode_has_one_backbone_and_dual_two():
    shared = build_model(seed_regression(image_size=32))
    dual = build_model(seed_regression(image_size=32, mode="dual"))
    assert shared.shared and shared.back_backbone is None
    assert not dual.shared and dual.back_backbone is not shared.front_backbone
    backbone_params = sum(p.numel() for p in shared.front_backbone.parameters())
    assert sum(p.numel() for p in dual.parameters()) - sum(p.numel() for p in shared.parameters()) == backbone_params


def test_all_batchnorm_layers_use_momentum_point_one():
    # torchvision's MobileNetV3 default (0.01) leaves eval-mode statistics far behind after short training
    model = build_model(seed_regression(image_size=32))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.1 for m in norms)


def test_grayscale_adapts_the_first_convolution():
    for backbone in ("mobilenet_v3_small", "resnet18"):
        model = build_model(seed_regression(backbone=backbone, grayscale=True, image_size=32))
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert first.in_channels == 1


def test_projection_layer_is_optional():
    plain = build_model(seed_regression(image_size=32))
    projected = build_model(seed_regression(image_size=32, projection_dim=64))
    assert isinstance(projected.head[0], nn.Linear) and projected.head[0].out_features == 64
    assert not isinstance(plain.head[0], nn.Linear)


def test_backbone_loads_a_local_state_dict(tmp_path):
    # given a torchvision state dict on disk (as from a pretrained file copied to the machine)
    torch.manual_seed(1)
    reference = tv_models.mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pt"
    torch.save(reference.state_dict(), path)
    # when the model is built with it
    model = build_model(seed_regression(image_size=32, weights_path=str(path)))
    # then the feature layers hold exactly those weights
    assert torch.equal(model.front_backbone.body[0][0].weight, reference.features[0][0].weight)


def test_missing_or_mismatched_weights_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_model(seed_regression(image_size=32, weights_path=str(tmp_path / "none.pt")))
    path = tmp_path / "resnet.pt"
    torch.save(tv_models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit"):
        build_model(seed_regression(image_size=32, weights_path=str(path)))


def test_year_normalisation_round_trips_and_spans_minus_one_to_one():
    config = seed_regression()
    assert normalise_year(1700, config) == -1 and normalise_year(2025, config) == 1
    years = torch.tensor([1700.0, 1874.0, 2025.0])
    assert torch.allclose(denormalise_year(normalise_year(years, config), config), years)
    narrow = dataclasses.replace(config, year_min=1800, year_max=1900)
    assert normalise_year(1850, narrow) == 0
