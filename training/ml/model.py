"""CoinYearNet: two photos in, a minting year out.

backbone: torchvision resnet18 or mobilenet_v3_small, randomly initialised or loaded from a local state-dict file
(nothing is ever downloaded). mode "shared" runs one CNN on both sides (fewer weights, one pass over a 2N batch);
"dual" has one CNN per side. The two feature vectors are concatenated, optionally projected, and an MLP regresses
a normalised year in [-1, 1] (year_min..year_max), which keeps the L1 loss and the learning rate independent of the
year range. ``predict_years`` turns it back into years.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torchvision import models as tv_models

from training.ml.base_reader import load_base_state
from training.ml.config import TrainConfig
from training.ml.reader import DateReaderNet, ReaderLossWeights, ReaderTargets, reader_loss, year_log_probs

BN_MOMENTUM = 0.1
YearLike = TypeVar("YearLike", float, np.ndarray, torch.Tensor)


def normalise_year(year: YearLike, config: TrainConfig) -> YearLike:
    """Year -> [-1, 1] over [year_min, year_max] (works on floats, numpy arrays and tensors)."""
    centre = (config.year_min + config.year_max) / 2
    half = (config.year_max - config.year_min) / 2
    return (year - centre) / half


def denormalise_year(value: YearLike, config: TrainConfig) -> YearLike:
    """Inverse of normalise_year."""
    centre = (config.year_min + config.year_max) / 2
    half = (config.year_max - config.year_min) / 2
    return value * half + centre


def _torchvision_model(config: TrainConfig) -> nn.Module:
    if config.backbone == "resnet18":
        model = tv_models.resnet18(weights=None)
    elif config.backbone == "mobilenet_v3_small":
        model = tv_models.mobilenet_v3_small(weights=None)
    else:  # pragma: no cover - TrainConfig validates the choice
        raise ValueError(f"unknown backbone {config.backbone!r}")
    if config.weights_path:
        _load_local_weights(model, Path(config.weights_path))
    return model


def _load_local_weights(model: nn.Module, path: Path) -> None:
    """Load a torchvision state dict from a local file; the classifier may differ, the feature layers may not."""
    if not path.is_file():
        raise FileNotFoundError(f"weights_path {path} does not exist (weights are never downloaded)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    feature_keys = [k for k in own if not k.startswith(("fc.", "classifier."))]
    missing = [k for k in feature_keys if k not in usable]
    if missing:
        raise ValueError(f"weights file {path} does not fit the backbone: {len(missing)} missing, e.g. {missing[:3]}")
    model.load_state_dict(usable, strict=False)


class Backbone(nn.Module):
    """A torchvision CNN without its classifier: image (N, C, H, W) -> features (N, out_features)."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        model = _torchvision_model(config)
        if config.backbone == "resnet18":
            self.body = nn.Sequential(
                model.conv1,
                model.bn1,
                model.relu,
                model.maxpool,
                model.layer1,
                model.layer2,
                model.layer3,
                model.layer4,
            )
            self.out_features = model.fc.in_features
        else:
            self.body = model.features
            self.out_features = model.classifier[0].in_features
        if config.grayscale:
            _to_single_channel(self.body)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)


def _to_single_channel(body: nn.Module) -> None:
    """Replace the first conv by a 1-channel one whose kernel is the sum over RGB (keeps pretrained responses)."""
    for name, module in body.named_modules():
        if isinstance(module, nn.Conv2d):
            conv = nn.Conv2d(
                1,
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=1,
                bias=module.bias is not None,
            )
            with torch.no_grad():
                conv.weight.copy_(module.weight.sum(dim=1, keepdim=True))
                if module.bias is not None:
                    conv.bias.copy_(module.bias)
            parent = body
            *path, last = name.split(".")
            for part in path:
                parent = getattr(parent, part)
            setattr(parent, last, conv)
            return
    raise ValueError("the backbone has no convolution")  # pragma: no cover


class CoinYearNet(nn.Module):
    """front, back (N, C, H, W), normalised by images.build_transforms -> normalised year (N,)."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.front_backbone = Backbone(config)
        # shared: one CNN sees both sides; dual: the back gets its own CNN
        self.back_backbone: Backbone | None = Backbone(config) if config.mode == "dual" else None
        fused = 2 * self.front_backbone.out_features
        layers: list[nn.Module] = []
        if config.projection_dim > 0:
            layers += [nn.Linear(fused, config.projection_dim), nn.ReLU(inplace=True)]
            fused = config.projection_dim
        layers += [
            nn.Dropout(config.dropout),
            nn.Linear(fused, config.head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, 1),
        ]
        self.head = nn.Sequential(*layers)
        nn.init.zeros_(self.head[-1].bias)  # start at the centre of the year range
        set_bn_momentum(self, BN_MOMENTUM)

    @property
    def shared(self) -> bool:
        return self.back_backbone is None

    def features(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        """Concatenated (front, back) features, (N, 2 * out_features)."""
        if self.shared:
            n = front.shape[0]
            both = self.front_backbone(torch.cat([front, back], 0))  # one pass over 2N images
            front_f, back_f = both[:n], both[n:]  # slicing keeps the batch size dynamic in the ONNX export
        else:
            front_f, back_f = self.front_backbone(front), self.back_backbone(back)
        return torch.cat([front_f, back_f], 1)

    def forward(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(front, back)).squeeze(1)

    def predict_years(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        """Years (N,) as floats; eval mode and no autograd are the caller's choice."""
        return denormalise_year(self.forward(front, back), self.config)


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Set every BatchNorm's running-stat momentum.

    torchvision's MobileNetV3 uses 0.01: after a short training the running statistics still describe the random
    init, so eval-mode predictions lag far behind train mode (measured: MAE stuck near the constant baseline).
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


class CoinDateModel(nn.Module):
    """head "reader": the date reader (training.ml.reader) in the shape the K-fold pipeline expects.

    forward(front, back) answers the normalised most likely year (N,), so evaluation, batch-norm recalibration and
    early stopping work as for the regression head; ``year_log_probs`` gives the whole distribution and
    ``training_loss`` the reader's loss (NLL of the year + L1 on its expectation) from year labels alone.
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.reader = DateReaderNet(
            in_channels=config.in_channels,
            width=config.reader_width,
            year_min=config.year_min,
            year_max=config.year_max,
        )
        # Pretrained against non-coin photos; year labels hold none, so the year loss never trains it. A retrain
        # with curators' non-coins refits it on detached features after the year training (coin_head.py).
        for parameter in self.reader.coin.parameters():
            parameter.requires_grad_(False)

    def photo_features(self, photos: torch.Tensor) -> torch.Tensor:
        """The coin head's input for single photos (N, C, H, W): the trunk's mean- and max-pooled features
        (N, 2 x width) in float32, as DateReaderNet.forward computes them for each photo of a pair."""
        features = self.reader.trunk(photos)
        return torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1).float()

    def year_log_probs(self, front: torch.Tensor, back: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(year) (N, Y), per-photo coin probability (N, 2))."""
        output = self.reader(front, back)
        return year_log_probs(output, self.reader.year_digits), torch.sigmoid(output.coin)

    def forward(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        log_p, _ = self.year_log_probs(front, back)
        return normalise_year(self.reader.years[log_p.argmax(1)], self.config)

    def predict_years(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        return denormalise_year(self.forward(front, back), self.config)

    def training_loss(
        self, front: torch.Tensor, back: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """Loss on a labelled batch (normalised targets, as the regression head takes them); the coin head is not
        trained here (labelled batches hold only coins, so it would learn that everything is one): pretraining taught
        it against generated non-coin photos, and a run given curators' non-coins refits it after the year training
        on detached features (coin_head.fit_coin_head)."""
        years = torch.round(denormalise_year(target.float(), self.config)).long()
        targets = ReaderTargets(
            year_index=(years - self.config.year_min).clamp(0, self.config.year_max - self.config.year_min),
            date_cell=torch.full_like(years, -1),
            is_coin=torch.ones(len(years), 2, device=target.device),
        )
        output = self.reader(front, back)
        loss, _ = reader_loss(output, targets, self.reader.year_digits, self.reader.years, FINE_TUNE_WEIGHTS)
        return loss


FINE_TUNE_WEIGHTS = ReaderLossWeights(coin=0.0)


def build_model(config: TrainConfig) -> CoinYearNet | CoinDateModel:
    """The model for ``config``: the date reader (from the pretrained base when init_from is "base") or the seed's
    regression net (random init, or the backbone from config.weights_path)."""
    if config.head == "reader":
        model = CoinDateModel(config)
        if config.init_from == "base":
            state, base_config = load_base_state()
            if int(base_config.get("reader_width", -1)) != config.reader_width:
                raise ValueError(
                    f"the base reader has width {base_config.get('reader_width')}, the config asks for "
                    f"{config.reader_width}"
                )
            model.reader.load_state_dict(state)
        return model
    return CoinYearNet(config)
