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

No host synchronisation: angles given as a float or a CPU tensor are checked
and turned into rotation matrices on the host (float64 trigonometry, as
Python's math module in torchvision), and only the (B, 2, 3) matrices are
copied to the images' device; angles already on an accelerator are checked
with one read-back per call (`check=False` skips it) and the quarter turns
are then selected with a mask instead of an index.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

INTERPOLATIONS = ("nearest", "bilinear")


def rotate(images: torch.Tensor, angles_deg: float | torch.Tensor,
           interpolation: str = "nearest", check: bool = True) -> torch.Tensor:
    """Rotate each image (B, C, H, W) by its own angle in degrees, counter-clockwise.

    `angles_deg` is a float (same angle for all) or a (B,) tensor on any
    device; the result is on the images' device.
    """
    angles = _check_inputs(images, angles_deg, interpolation, check)  # (B,) float64
    b, _, h, w = images.shape
    on_host = angles.device.type == "cpu"
    if on_host and h == w and b > 0:
        quarter = torch.remainder(angles, 90.0) == 0  # (B,)
        if bool(quarter.all()):
            turns = torch.remainder(torch.round(angles / 90.0), 4).long()
            if bool((turns == turns[0]).all()):  # one quarter turn for all: no resampling
                return torch.rot90(images, int(turns[0]), dims=(2, 3)).contiguous()
    theta = _rotation_matrices(angles, images.dtype)  # (B, 2, 3), on angles' device
    if theta.device != images.device:
        theta = theta.to(images.device, non_blocking=True)
    grid = _affine_grid(theta, h, w, images.dtype, images.device)  # (B, H, W, 2)
    out = F.grid_sample(images, grid, mode=interpolation, padding_mode="zeros",
                        align_corners=False)  # (B, C, H, W)
    if h == w:
        if on_host:
            _exact_quarter_turns(images, angles, out)
        else:
            out = _masked_quarter_turns(images, angles, out)
    return out


def random_angles(n: int, theta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) float32 angles uniform in [-theta, theta] degrees."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer, got {n!r}")
    if not math.isfinite(theta) or theta < 0:
        raise ValueError(f"`theta` must be a finite number >= 0, got {theta!r}")
    u = torch.rand(n, generator=generator)  # (n,) in [0, 1)
    return (2.0 * u - 1.0) * float(theta)


def _check_inputs(images, angles_deg, interpolation, check: bool = True) -> torch.Tensor:
    """The angles as a (B,) float64 tensor: on the CPU for a float or a CPU
    tensor, else on the angles' device."""
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
        angles = angles_deg.detach().to(dtype=torch.float64)
    elif isinstance(angles_deg, (int, float)):
        if not math.isfinite(angles_deg):
            raise ValueError("`angles_deg` must be finite")
        return torch.full((b,), float(angles_deg), dtype=torch.float64)
    else:
        raise ValueError(f"`angles_deg` must be a float or a (B,) tensor, got {type(angles_deg).__name__}")
    if (check or angles.device.type == "cpu") and not bool(torch.isfinite(angles).all()):
        raise ValueError("`angles_deg` must be finite")
    return angles


def _rotation_matrices(angles: torch.Tensor, dtype) -> torch.Tensor:
    """torchvision's inverse affine matrices: (B,) float64 degrees -> (B, 2, 3) in `dtype`."""
    # _get_inverse_affine_matrix(center=0, -angle, ...): [cos, sin, 0, -sin, cos, 0]
    # with rot = radians(-angle), computed in float64 like Python's math module.
    rot = (-angles) * (math.pi / 180.0)  # (B,)
    cos, sin, zero = torch.cos(rot), torch.sin(rot), torch.zeros_like(rot)
    return torch.stack([cos, sin, zero, -sin, cos, zero], dim=1).to(dtype).view(-1, 2, 3)


def _affine_grid(theta: torch.Tensor, h: int, w: int, dtype, device) -> torch.Tensor:
    """torchvision's sampling grid for each (2, 3) matrix: (B, 2, 3) -> (B, H, W, 2)."""
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
    """Overwrite, in place, the samples whose angle (on the CPU) is a multiple
    of 90 with torch.rot90."""
    quarter = torch.remainder(angles, 90.0) == 0  # (B,)
    if not bool(quarter.any()):
        return
    turns = torch.remainder(torch.round(angles / 90.0), 4).long()  # (B,)
    for k in range(4):
        idx = torch.nonzero(quarter & (turns == k)).flatten()
        if idx.numel():
            idx = idx.to(images.device, non_blocking=True)
            out[idx] = torch.rot90(images[idx], k, dims=(2, 3))  # (b, C, H, W)


def _masked_quarter_turns(images: torch.Tensor, angles: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """`out` with the samples whose angle is a multiple of 90 replaced by their
    exact quarter turn, selected by a mask (no read-back): one gather of
    each image through the index map of its torch.rot90."""
    b, c, h, w = images.shape
    quarter = torch.remainder(angles, 90.0) == 0  # (B,)
    turns = torch.remainder(torch.round(angles / 90.0), 4).long()  # (B,)
    flat = torch.arange(h * w, device=images.device).view(h, w)
    maps = torch.stack([torch.rot90(flat, k, dims=(0, 1)).reshape(-1) for k in range(4)])  # (4, H*W)
    src = maps[turns][:, None, :].expand(b, c, h * w)  # (B, C, H*W)
    turned = images.reshape(b, c, h * w).gather(2, src).view(b, c, h, w)
    return torch.where(quarter.view(-1, 1, 1, 1), turned, out)
