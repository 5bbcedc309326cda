"""Exponential moving average of parameters: ``shadow <- d shadow + (1 - d) param`` with the warm-up
decay ``d = min(decay, (1 + n) / (10 + n))`` after n updates (as torch_ema's ``use_num_updates``)."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, p in model.named_parameters():
            if k in self.shadow:
                self.shadow[k].lerp_(p.detach(), 1.0 - d)

    @contextmanager
    def applied(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model``."""
        params = dict(model.named_parameters())
        backup = {k: params[k].detach().clone() for k in self.shadow}
        with torch.no_grad():
            for k, v in self.shadow.items():
                params[k].copy_(v)
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    params[k].copy_(v)
