"""The default configuration learns: a few optimiser steps of configs/default.yaml (its learning rate, schedule,
weight decay, augmentation and starting point, the base date reader) lower the loss on a tiny set of coins.

A learning rate divided by a million is a valid config, and each fold would still "train": only a test that the loss
moves says that the shipped configuration fine-tunes at all. Measured on 16 generated coins over seeds 1-7: the loss
after two epochs (four steps) is 0.13-0.35 of the base reader's on the same coins; with the learning rate divided by
a million it stays at 1.00 of it.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.data import Subset

from training.ml.config import load_config
from training.ml.data import CoinPairDataset, CoinSample, make_loader
from training.ml.model import build_model
from training.ml.synthetic import iter_coins
from training.ml.train import recalibrate_batchnorm, select_device, train_fold

COINS = 16
LEARNED = 0.6  # the loss after training must be below this share of the base reader's (measured: 0.13-0.35)


def test_a_few_steps_of_the_default_configuration_lower_the_loss_on_a_tiny_set():
    # given the shipped configuration, only shortened (two epochs of two batches), and 16 generated coins
    config = dataclasses.replace(load_config(), epochs=2, batch_size=8, patience=0)
    coins = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(COINS, seed=4, size=96))
    ]
    train_view = CoinPairDataset(coins, config, train=True).preload()
    eval_view = train_view.view(train=False)
    loader = make_loader(eval_view, batch_size=COINS, shuffle=False)
    front, back, target, weight = next(iter(loader))
    device = select_device("cpu")

    def loss(model) -> float:
        model.eval()
        with torch.no_grad():
            return float(model.training_loss(front, back, target, weight))

    # the base reader's loss on these coins, its batch-norm statistics measured on them as training's are
    base = build_model(config)
    recalibrate_batchnorm(base, loader, device=device)
    before = loss(base)

    # when one fold trains on them as every training run does
    everything = list(range(COINS))
    model, _ = train_fold(config, Subset(train_view, everything), Subset(eval_view, everything), fold=0, device=device)

    # then the loss went down clearly
    after = loss(model)
    assert after < LEARNED * before, (
        f"loss {before:.3f} -> {after:.3f} with lr {config.lr:g}: the default does not learn"
    )
