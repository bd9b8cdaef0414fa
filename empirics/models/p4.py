"""P4 group convolutions (Cohen & Welling 2016), same semantics as GrouPy.

P4 = translations and rotations by multiples of 90 degrees. A P4 feature map
has shape (B, C, 4, H, W): channel, orientation r in {0, 1, 2, 3}, space.

| layer                    | input            | output              | weight              |
|--------------------------|------------------|---------------------|---------------------|
| P4ConvZ2(C, O, k)        | (B, C, H, W)     | (B, O, 4, H', W')   | (O, C, k, k)        |
| P4ConvP4(C, O, k)        | (B, C, 4, H, W)  | (B, O, 4, H', W')   | (O, C, 4, k, k)     |
| GroupSpatialMaxPool2d(k) | (B, C, 4, H, W)  | (B, C, 4, H/k, W/k) | -                   |
| group_max_pool           | (B, C, 4, H, W)  | (B, C, H, W)        | -                   |

The filter for output orientation r is the base filter rotated by
`torch.rot90(w, r, dims=(-2, -1))` and, for P4ConvP4, cyclically shifted by r
along the input-orientation axis. Each layer is one `conv2d` with the
expanded filter bank (O*4, C*|H|, k, k); the bias is shared across
orientations.

Equivariance (exact): with T_k x = rot90^k in space (and, for P4 maps, a
cyclic shift by k along the orientation axis, `torch.roll(x, k, dims=2)`),
every P4 layer f satisfies f(T_k x) = T_k f(x). `equivariance_error` measures
the deviation over k = 0..3.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ORDER = 4  # |rotations| in P4


class _P4Conv(nn.Module):
    """Shared parts: He init with fan-in = in * |H| * k * k (as GrouPy), bias, conv2d."""

    in_orientations = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        for name, v, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if not isinstance(v, int) or v < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {v!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        shape = (out_channels, in_channels) + (() if self.in_orientations == 1 else (ORDER,))
        self.weight = nn.Parameter(torch.empty(*shape, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels * self.in_orientations * kernel_size * kernel_size
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / fan_in))
        self._index: torch.Tensor | None = None  # built on first use, on the weight's device
        self._cache: tuple | None = None  # (weight key, bank) for gradient-free forwards

    @staticmethod
    def transform(w: torch.Tensor, r: int) -> torch.Tensor:
        raise NotImplementedError

    def _make_index(self) -> torch.Tensor:
        """(4 * |H|*k*k,) gather index: entry [r, p] is where position p of the
        orientation-r filter reads the base filter. Built by applying
        `transform` to position labels, so it has the same semantics."""
        k, g = self.kernel_size, self.in_orientations
        labels = torch.arange(g * k * k).view(*(() if g == 1 else (g,)), k, k)  # (|H|, k, k)
        return torch.stack([self.transform(labels, r).reshape(-1) for r in range(ORDER)]).flatten()

    def filter_bank(self) -> torch.Tensor:
        """The expanded filter bank (O*4, C*|H|, k, k).

        When no gradient to the weight is needed (inference, eval under
        no_grad) the bank is cached until the weight changes (in-place
        updates bump its version; moves change device/dtype/storage).
        """
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return self._expand()
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._expand())
        return self._cache[1]

    def _expand(self) -> torch.Tensor:
        o, c, k, g = self.out_channels, self.in_channels, self.kernel_size, self.in_orientations
        if self._index is None or self._index.device != self.weight.device:
            self._index = self._make_index().to(self.weight.device)
        w = self.weight.reshape(o * c, g * k * k).t().contiguous()  # (|H|*k*k, O*C)
        w = w.index_select(0, self._index).view(ORDER, g, k * k, o, c)  # (4, |H|, k*k, O, C)
        return w.permute(3, 0, 4, 1, 2).reshape(o * ORDER, c * g, k, k)  # (O*4, C*|H|, k, k)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C*|H|, H, W) -> (B, O, 4, H', W')."""
        bias = None if self.bias is None else self.bias.repeat_interleave(ORDER)  # (O*4,)
        y = F.conv2d(x, self.filter_bank(), bias, self.stride, self.padding)  # (B, O*4, H', W')
        return y.view(y.shape[0], self.out_channels, ORDER, y.shape[-2], y.shape[-1])  # (B, O, 4, H', W')

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class P4ConvZ2(_P4Conv):
    """Lifting convolution: planar input (B, C, H, W) -> P4 map (B, O, 4, H', W')."""

    in_orientations = 1

    @staticmethod
    def transform(w: torch.Tensor, r: int) -> torch.Tensor:
        """Filter for output orientation r: rot90^r in space. (..., k, k) -> (..., k, k)."""
        return torch.rot90(w, r, dims=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"P4ConvZ2 expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        return self._conv(x)  # (B, O, 4, H', W')


class P4ConvP4(_P4Conv):
    """Group convolution: P4 map (B, C, 4, H, W) -> P4 map (B, O, 4, H', W')."""

    in_orientations = ORDER

    @staticmethod
    def transform(w: torch.Tensor, r: int) -> torch.Tensor:
        """Filter for output orientation r: cyclic shift by r of the input
        orientations, then rot90^r in space. (..., 4, k, k) -> (..., 4, k, k)."""
        return torch.rot90(torch.roll(w, r, dims=-3), r, dims=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != ORDER:
            raise ValueError(f"P4ConvP4 expects (B, C, 4, H, W) input, got shape {tuple(x.shape)}")
        b, c, _, h, w = x.shape
        return self._conv(x.reshape(b, c * ORDER, h, w))  # (B, O, 4, H', W')


class GroupSpatialMaxPool2d(nn.Module):
    """Max pooling over space, separately for each orientation: (B, C, 4, H, W) -> (B, C, 4, H', W')."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"GroupSpatialMaxPool2d expects (B, C, 4, H, W) input, got shape {tuple(x.shape)}")
        b, c, g, h, w = x.shape
        y = F.max_pool2d(x.reshape(b, c * g, h, w), self.kernel_size, self.stride,
                         self.padding, ceil_mode=self.ceil_mode)  # (B, C*4, H', W')
        return y.view(b, c, g, y.shape[-2], y.shape[-1])  # (B, C, 4, H', W')

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def group_max_pool(x: torch.Tensor) -> torch.Tensor:
    """Max over the orientation axis: (B, C, 4, H, W) -> (B, C, H, W), rot90-equivariant."""
    return x.amax(dim=2)


class GroupMaxPool(nn.Module):
    """Module form of `group_max_pool`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_max_pool(x)  # (B, C, H, W)


def p4_act(x: torch.Tensor, k: int) -> torch.Tensor:
    """The action T_k of rotation by k quarter turns (counter-clockwise, as torch.rot90).

    (B, C, 4, H, W): rot90 in space and cyclic shift by k of orientations;
    (B, C, H, W): rot90 in space; (B, N): unchanged (invariant outputs such as logits).
    """
    if x.dim() == 5:
        return torch.rot90(torch.roll(x, k, dims=2), k, dims=(3, 4))
    if x.dim() == 4:
        return torch.rot90(x, k, dims=(2, 3))
    if x.dim() == 2:
        return x
    raise ValueError(f"no P4 action defined for a tensor of shape {tuple(x.shape)}")


@torch.no_grad()
def equivariance_error(module: nn.Module, x: torch.Tensor) -> float:
    """max over k in 0..3 of max |module(T_k x) - T_k module(x)|, in eval mode.

    For a P4 layer this is the equivariance error; for a model returning
    logits (B, N) it is the invariance error. The module's train/eval mode is
    restored afterwards.
    """
    was_training = module.training
    module.eval()
    try:
        y = module(x)
        return max(float((module(p4_act(x, k)) - p4_act(y, k)).abs().max()) for k in range(ORDER))
    finally:
        module.train(was_training)
