"""The date reader: a CNN that finds the date on either photo and reads its four digits.

Why not a globally pooled regression (the seed's CoinYearNet): on 4,000 generated coins it read the thousands and
hundreds digits but left the units at chance, because global pooling throws away where each digit sits. Text
recognisers keep a feature map instead (Goodfellow et al. 2013 read house numbers with per-digit softmax heads).
So every cell of a stride-8 feature map, on both photos, says "a date is centred here" (one logit) and reads the
four digits of the date centred there (4 x 10 logits). The year distribution is the mixture over cells:

    p(year) = sum_cells softmax(locate)_cell * prod_k p_cell,k(digit_k(year)),   year in year_min..year_max

so a legible date gives a sharp distribution, a worn units digit spreads it over the decade (a wide interval), and
a coin whose date sits somewhere new still trains end to end from its year alone (the mixture is a multiple-instance
reader). On generated coins the generator knows where it drew the date: pretraining adds that as a target for the
locate logits and for the digits at that cell (never needed at serving time). A third head scores, per photo,
whether it shows a coin at all (trained against generated non-coin photos).

The trunk is plain 3x3 convolutions (no depthwise ones): with bfloat16 autocast they run on this CPU's AMX units,
measured 3.5 ms per 160 px photo per training step against 6.3 ms in float32; dilations 2 and 4 in the last blocks
give each cell a receptive field of the whole photo (271 px) at 192 px input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DIGITS = 4
STRIDE = 8


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout, momentum=0.1),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.a = _conv(channels, channels, 1, dilation)
        self.b = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels, momentum=0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class ReaderTrunk(nn.Module):
    """Photo (N, C, H, W) -> feature map (N, width, H/8, W/8)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        quarter = max(16, width // 2)
        self.body = nn.Sequential(
            _conv(in_channels, 24, 2),
            _conv(24, quarter, 2),
            _Residual(quarter, 1),
            _conv(quarter, width, 2),
            _Residual(width, 1),
            _Residual(width, 2),
            _Residual(width, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@dataclass
class ReaderOutput:
    """Raw logits: locate (N, cells), digits (N, cells, 4, 10), coin (N, 2) per photo (front, back)."""

    locate: torch.Tensor
    digits: torch.Tensor
    coin: torch.Tensor


class DateReaderNet(nn.Module):
    """front, back (N, C, H, W) normalised -> ReaderOutput over the cells of both photos (front cells first)."""

    def __init__(self, *, in_channels: int, width: int, year_min: int, year_max: int) -> None:
        super().__init__()
        self.year_min, self.year_max = int(year_min), int(year_max)
        self.trunk = ReaderTrunk(in_channels, width)
        self.read = nn.Sequential(_conv(width, width), nn.Conv2d(width, 1 + DIGITS * 10, 1))
        self.coin = nn.Sequential(nn.Linear(2 * width, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))
        self.register_buffer("year_digits", year_digit_table(self.year_min, self.year_max), persistent=False)
        self.register_buffer(
            "years", torch.arange(self.year_min, self.year_max + 1, dtype=torch.float32), persistent=False
        )

    def forward(self, front: torch.Tensor, back: torch.Tensor) -> ReaderOutput:
        n = front.shape[0]
        features = self.trunk(torch.cat([front, back], 0))  # one pass over 2N photos
        pooled = torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1)
        coin = self.coin(pooled.float()).view(2, n).t()
        maps = self.read(features).float()  # (2N, 41, h, w)
        cells = maps.shape[2] * maps.shape[3]
        maps = maps.view(2, n, 1 + DIGITS * 10, cells).permute(1, 0, 3, 2).reshape(n, 2 * cells, 1 + DIGITS * 10)
        return ReaderOutput(locate=maps[..., 0], digits=maps[..., 1:].reshape(n, 2 * cells, DIGITS, 10), coin=coin)


def year_digit_table(year_min: int, year_max: int) -> torch.Tensor:
    """(Y, 4) long: the four digits of every year in year_min..year_max."""
    years = torch.arange(year_min, year_max + 1)
    return torch.stack([(years // 10 ** (DIGITS - 1 - k)) % 10 for k in range(DIGITS)], 1)


TOP_CELLS = 16


def year_log_probs(output: ReaderOutput, year_digits: torch.Tensor, top_cells: int = TOP_CELLS) -> torch.Tensor:
    """log p(year) (N, Y): the locate-weighted mixture over cells of the cell's digit reading, renormalised to the
    year range (a reading of a year outside the range carries no mass).

    Only the ``top_cells`` most likely cells enter the mixture: over all 1,152 cells of two 192 px photos the
    (N, cells, Y) tensor cost 326 ms of a 1.26 s training step; the cells left out carry almost no weight.
    """
    cells = output.locate.shape[1]
    top = output.locate.topk(min(top_cells, cells), 1).indices  # (N, k)
    weights = torch.log_softmax(output.locate, 1).gather(1, top)
    chosen = output.digits.gather(1, top[:, :, None, None].expand(-1, -1, DIGITS, 10))
    digits = torch.log_softmax(chosen, -1)  # (N, k, 4, 10)
    per_cell = weights[..., None] + sum(digits[:, :, k, year_digits[:, k]] for k in range(DIGITS))  # (N, cells, Y)
    mixture = torch.logsumexp(per_cell, 1)
    return torch.log_softmax(mixture, 1)


@dataclass(frozen=True)
class ReaderTargets:
    """Per pair: year index (into year_min..year_max; -1 for a pair with a non-coin photo), the cell the date is
    centred on (-1 when unknown), and per photo whether it shows a coin."""

    year_index: torch.Tensor  # (N,) long
    date_cell: torch.Tensor  # (N,) long
    is_coin: torch.Tensor  # (N, 2) float


@dataclass(frozen=True)
class ReaderLossWeights:
    l1: float = 0.05  # per year of |E[year] - year|: DLDL-v2's L1 on the expectation beside the distribution loss
    locate: float = 0.5
    digits: float = 1.0
    coin: float = 0.5


def reader_loss(
    output: ReaderOutput,
    targets: ReaderTargets,
    year_digits: torch.Tensor,
    years: torch.Tensor,
    weights: ReaderLossWeights = ReaderLossWeights(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """NLL of the true year + L1 on the expected year (+ where the date is known: locate CE and digit CE at the
    date's cell) + per-photo coin BCE. Returns the loss and its parts (floats, for the learning curves)."""
    parts: dict[str, torch.Tensor] = {}
    coin_pairs = targets.year_index >= 0
    loss = weights.coin * F.binary_cross_entropy_with_logits(output.coin, targets.is_coin)
    parts["coin"] = loss.detach()
    if bool(coin_pairs.any()):
        index = coin_pairs.nonzero().squeeze(1)
        sub = ReaderOutput(output.locate[index], output.digits[index], output.coin[index])
        log_p = year_log_probs(sub, year_digits)
        true = targets.year_index[index]
        nll = -log_p.gather(1, true[:, None]).squeeze(1).mean()
        expected = (log_p.exp() * years).sum(1)
        l1 = (expected - years[true]).abs().mean()
        parts["nll"], parts["l1"] = nll.detach(), l1.detach()
        loss = loss + nll + weights.l1 * l1
        located = targets.date_cell[index] >= 0
        if bool(located.any()):
            where = located.nonzero().squeeze(1)
            cell = targets.date_cell[index][where]
            locate = F.cross_entropy(sub.locate[where], cell)
            at_cell = sub.digits[where, cell]  # (M, 4, 10)
            digits = F.cross_entropy(at_cell.reshape(-1, 10), year_digits[true[where]].reshape(-1))
            parts["locate"], parts["digits"] = locate.detach(), digits.detach()
            loss = loss + weights.locate * locate + weights.digits * digits
    return loss, {k: float(v) for k, v in parts.items()}


def date_cell_index(side: torch.Tensor, x: torch.Tensor, y: torch.Tensor, grid: int) -> torch.Tensor:
    """The cell (front cells first, row-major) holding the point (x, y) in [0, 1) shares of the photo."""
    col = (x * grid).long().clamp(0, grid - 1)
    row = (y * grid).long().clamp(0, grid - 1)
    return side.long() * grid * grid + row * grid + col
