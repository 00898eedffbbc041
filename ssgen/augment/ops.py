"""Image operations vectorised over a batch, each image with its own parameters.

Images here are float [B,3,H,W] in [0, 1] (the range the papers' formulas are written for);
`views.py` converts from and to the project's [-1, 1]. Each function takes the per-image
parameters as tensors; drawing them is the caller's job, so every op is deterministic and
testable on a known input. The colour formulas are torchvision's (`adjust_brightness` ...),
applied per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision


def per_image(values: torch.Tensor) -> torch.Tensor:
    """[B] -> [B,1,1,1], to broadcast one value per image."""
    return values.view(-1, 1, 1, 1)


def random_boxes(n: int, scale: list[float], ratio: list[float], device: torch.device,
                 tries: int = 10) -> torch.Tensor:
    """Random-resized-crop boxes [n,4] (centre x, centre y, width, height) in units of the image
    side. Like torchvision: area ~ U(scale), log aspect ratio ~ U(log ratio), the first of
    `tries` draws that fits, else the whole image. Sub-pixel boxes: sampling interpolates."""
    area = torch.empty(n, tries, device=device).uniform_(*scale)
    log_ratio = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    w, h = (area * log_ratio.exp()).sqrt(), (area / log_ratio.exp()).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = fits.int().argmax(1, keepdim=True)  # index of the first fitting draw (0 if none fits)
    w = torch.where(fits.any(1), w.gather(1, first).squeeze(1), 1.0)
    h = torch.where(fits.any(1), h.gather(1, first).squeeze(1), 1.0)
    cx = w / 2 + torch.rand(n, device=device) * (1 - w)
    cy = h / 2 + torch.rand(n, device=device) * (1 - h)
    return torch.stack([cx, cy, w, h], 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor) -> torch.Tensor:
    """Each image's box resampled (bilinear) to size x size, mirrored where `flip` [B] is true:
    crop, resize and flip in one grid_sample pass. A box reaching past the image (a shift)
    reflects the image at its border."""
    cx, cy, w, h = (per_image(v).to(x.dtype) for v in boxes.unbind(1))  # each [B,1,1,1]
    w = torch.where(per_image(flip), -w, w)
    centres = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size * 2 - 1  # output pixels in [-1, 1]
    across = (2 * cx - 1) + w * centres.view(1, 1, 1, size)  # where each output pixel samples the input
    down = (2 * cy - 1) + h * centres.view(1, 1, size, 1)
    grid = torch.cat(torch.broadcast_tensors(across, down), 1).permute(0, 2, 3, 1)  # [B,size,size,2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def gray(x: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] -> [B,1,H,W] luma."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * per_image(factor)).clamp_(0, 1)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma."""
    mean = gray(x).mean((1, 2, 3), keepdim=True)
    return torch.lerp(mean, x, per_image(factor)).clamp_(0, 1)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's own grayscale."""
    return torch.lerp(gray(x), x, per_image(factor)).clamp_(0, 1)


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by `shift` (a fraction of the colour circle, in [-0.5, 0.5]),
    keeping HSV value and saturation. HSV -> RGB by the closed form
    channel = V - V*S * clamp(min(k, 4 - k), 0, 1), k = (n + hue in sextants) mod 6, n = 5, 3, 1."""
    r, g, b = x.split(1, 1)
    # elementwise max/min: a reduction over the 3-channel dim is several times slower on CPU
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)  # V * S
    c = chroma.clamp_min(1e-8)  # gray pixels have no hue; any value gives them back unchanged
    sextant = torch.where(r == value, (g - b) / c, torch.where(g == value, (b - r) / c + 2, (r - g) / c + 4))
    sextant = sextant + 6 * per_image(shift)
    n = torch.arange(5, 0, -2, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)  # 5, 3, 1
    k = (n + sextant) % 6
    return value - chroma * torch.minimum(k, 4 - k).clamp_(0, 1)


def color_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """factors [B,4]: brightness, contrast, saturation multipliers and hue shift; (1, 1, 1, 0)
    leaves an image unchanged. A fixed order (torchvision draws one per call): without the
    clamps, brightness, contrast and saturation commute, so the order matters little."""
    b, c, s, h = factors.unbind(1)
    return hue(saturation(contrast(brightness(x, b), c), s), h)


def grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    return torch.where(per_image(apply), gray(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with each image's sigma [B] (pixels); sigma 0 leaves an image
    unchanged. The kernel spans +-radius pixels; the border reflects."""
    n, channels, height, width = x.shape
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-offsets**2 / (2 * sigma.to(x.dtype).clamp_min(1e-4)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # [B*3,K]
    planes = F.pad(x.reshape(1, n * channels, height, width), [radius] * 4, mode="reflect")
    planes = F.conv2d(planes, kernel[:, None, None, :], groups=n * channels)  # along width
    planes = F.conv2d(planes, kernel[:, None, :, None], groups=n * channels)  # along height
    return planes.view_as(x)


def solarize(x: torch.Tensor, apply: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the values at or above the threshold (PIL's 128 of 255) in the chosen images."""
    return torch.where(per_image(apply) & (x >= threshold), 1 - x, x)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance.Sharpness per image: blend with the image smoothed by the 3x3 kernel
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (border pixels kept as they are); factor 1 leaves the
    image unchanged, 0 gives the smoothed one, above 1 sharpens."""
    channels = x.shape[1]
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(channels, 1, 3, 3)
    smoothed = x.clone()
    smoothed[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=channels)
    return torch.lerp(smoothed, x, per_image(factor)).clamp_(0, 1)
