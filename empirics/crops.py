"""Random crops with zero padding and horizontal flips, one draw per image
(the paper's CIFAR-10 training augmentation: 4-pixel padding, then a crop
back to the image size at a random offset, and a flip with probability 1/2).
"""
from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F


def random_crop_flip(x: Tensor, pad: int, flip: bool, generator: torch.Generator) -> Tensor:
    """x (B, C, H, W) -> (B, C, H, W): each image zero-padded by `pad` pixels
    and cropped back at its own offset in [0, 2 pad]^2, then (if `flip`)
    mirrored left-right with probability 1/2. Draws come from `generator`
    (a CPU generator), so the same generator state gives the same batch."""
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"`pad` must be a non-negative integer, got {pad!r}")
    b, _, h, w = x.shape
    if pad > 0:
        off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)  # (2, B)
        padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p)
        rows = off[0][:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = off[1][:, None] + torch.arange(w, device=x.device)  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        x = x.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(x.device)  # (B,)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x
