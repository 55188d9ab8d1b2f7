"""coin-year model code: plain PyTorch, torchvision and Pillow; no Django (see CONTRACT.md).

Modules are imported on their own (``from training.ml import images``); this package file imports nothing, so that
importing one part never pulls in torch, MLflow or Django through another.
"""
