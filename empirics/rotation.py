"""Batched image rotation, one angle per sample, about the centre, zero fill.

Per image, `rotate` reproduces `torchvision.transforms.functional.rotate(img,
angle, interpolation=NEAREST | BILINEAR)` pixel for pixel: the same inverse
affine matrix (`_get_inverse_affine_matrix` with `-angle`), the same sampling
grid (`_gen_affine_grid`: pixel centres at half-integers, rescaled by half the
image size) and the same `grid_sample(..., padding_mode="zeros",
align_corners=False)`. Positive angles rotate counter-clockwise, as in
torchvision and PIL. The whole batch is one `bmm` and one `grid_sample` call.

Multiples of 90 degrees (0 included) on square images are computed with
`torch.rot90` so they are exact for both interpolations (the grid is off by a
few ulp there, which bilinear sampling would show). On non-square images a
multiple of 90 degrees goes through the grid like any other angle, as in
torchvision: the output keeps the input's (H, W), so content is cropped and
the uncovered parts are zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

INTERPOLATIONS = ("nearest", "bilinear")


def rotate(images: torch.Tensor, angles_deg: float | torch.Tensor,
           interpolation: str = "nearest") -> torch.Tensor:
    """Rotate each image (B, C, H, W) by its own angle in degrees, counter-clockwise.

    `angles_deg` is a float (same angle for all) or a (B,) tensor.
    """
    angles = _check_inputs(images, angles_deg, interpolation)  # (B,) float64
    b, _, h, w = images.shape
    grid = _affine_grid(angles, h, w, images.dtype, images.device)  # (B, H, W, 2)
    out = F.grid_sample(images, grid, mode=interpolation, padding_mode="zeros",
                        align_corners=False)  # (B, C, H, W)
    if h == w:
        _exact_quarter_turns(images, angles, out)
    return out


def random_angles(n: int, theta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) float32 angles uniform in [-theta, theta] degrees."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer, got {n!r}")
    if not math.isfinite(theta) or theta < 0:
        raise ValueError(f"`theta` must be a finite number >= 0, got {theta!r}")
    u = torch.rand(n, generator=generator)  # (n,) in [0, 1)
    return (2.0 * u - 1.0) * float(theta)


def _check_inputs(images, angles_deg, interpolation) -> torch.Tensor:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("`images` must be a (B, C, H, W) tensor")
    if not images.is_floating_point():
        raise ValueError(f"`images` must be a floating-point tensor, got {images.dtype}")
    b = images.shape[0]
    if isinstance(angles_deg, torch.Tensor):
        if angles_deg.dim() == 0:
            angles_deg = angles_deg.expand(b)
        if angles_deg.shape != (b,):
            raise ValueError(f"`angles_deg` must be a float or a ({b},) tensor, "
                             f"got shape {tuple(angles_deg.shape)}")
        angles = angles_deg.to(device=images.device, dtype=torch.float64)
    elif isinstance(angles_deg, (int, float)):
        angles = torch.full((b,), float(angles_deg), dtype=torch.float64, device=images.device)
    else:
        raise ValueError(f"`angles_deg` must be a float or a (B,) tensor, got {type(angles_deg).__name__}")
    if not torch.isfinite(angles).all():
        raise ValueError("`angles_deg` must be finite")
    return angles


def _affine_grid(angles: torch.Tensor, h: int, w: int, dtype, device) -> torch.Tensor:
    """torchvision's rotation grid, one per angle: (B,) float64 -> (B, H, W, 2)."""
    # _get_inverse_affine_matrix(center=0, -angle, ...): [cos, sin, 0, -sin, cos, 0]
    # with rot = radians(-angle), computed in float64 like Python's math module.
    rot = (-angles) * (math.pi / 180.0)  # (B,)
    cos, sin, zero = torch.cos(rot), torch.sin(rot), torch.zeros_like(rot)
    theta = torch.stack([cos, sin, zero, -sin, cos, zero], dim=1).to(dtype).view(-1, 2, 3)  # (B, 2, 3)
    # _gen_affine_grid with ow = w, oh = h
    base = torch.empty(1, h, w, 3, dtype=dtype, device=device)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, steps=w, device=device))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, steps=h, device=device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=dtype, device=device)
    rescaled = theta.transpose(1, 2) / scale  # (B, 3, 2)
    grid = base.view(1, h * w, 3).expand(theta.shape[0], h * w, 3).bmm(rescaled)  # (B, H*W, 2)
    return grid.view(-1, h, w, 2)


def _exact_quarter_turns(images: torch.Tensor, angles: torch.Tensor, out: torch.Tensor) -> None:
    """Overwrite, in place, the samples whose angle is a multiple of 90 with torch.rot90."""
    quarter = torch.remainder(angles, 90.0) == 0  # (B,)
    if not bool(quarter.any()):
        return
    turns = torch.remainder(torch.round(angles / 90.0), 4).long()  # (B,)
    for k in range(4):
        idx = torch.nonzero(quarter & (turns == k)).flatten()
        if idx.numel():
            out[idx] = torch.rot90(images[idx], k, dims=(2, 3))  # (b, C, H, W)
