"""What the convolutions learned: their kernels, as pictures.

A first-layer filter reads the image's colour channels directly, so its
k x k x 3 kernel can be drawn as a small RGB patch: grey where a weight is 0,
towards a colour where the filter responds to that colour (each filter is
scaled by its own largest weight, so faint and strong filters are equally
visible). Deeper filters read feature maps, not colours: they are shown one
input channel at a time (:meth:`Filters.slices`).

A VGG16 transfer run reads images in BGR order (Caffe preprocessing,
:mod:`core.models.weight_sources`), so its first-layer kernels are flipped back to RGB
before drawing; they are the pretrained filters (ImageNet, HED or a file),
untouched by training because the base is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.base.errors import UserError
from core.inside.network import RunNetwork


@dataclass(frozen=True)
class Filters:
    """The kernels and biases of one Conv2D layer."""

    layer: str
    kernel: np.ndarray  # (k, k, C, F) as the network holds it
    bias: np.ndarray  # (F,)
    bgr: bool  # the input channels are B, G, R (VGG16's preprocessing)
    first: bool  # the layer reads the image

    @property
    def count(self) -> int:
        return int(self.kernel.shape[-1])

    def rgb(self) -> np.ndarray | None:
        """(F, k, k, 3) in [0, 1], 0.5 = a zero weight; None unless the layer reads the image."""
        if not self.first:
            return None
        k = self.kernel[:, :, ::-1, :] if self.bgr else self.kernel
        if k.shape[2] == 1:
            k = np.repeat(k, 3, axis=2)
        k = np.moveaxis(k, -1, 0).astype("float64")  # (F, k, k, 3)
        scale = np.abs(k).reshape(len(k), -1).max(axis=1)
        scale[scale == 0] = 1.0
        return np.clip(0.5 + k / (2 * scale[:, None, None, None]), 0, 1).astype("float32")

    def slices(self, index: int) -> np.ndarray:
        """Filter ``index``'s weights per input channel: (C, k, k)."""
        if not 0 <= index < self.count:
            raise UserError(f"{self.layer} has filters 0..{self.count - 1}. Got {index} instead.")
        return np.moveaxis(self.kernel[:, :, :, index], -1, 0)


def filters(net: RunNetwork, layer: str | None = None) -> Filters:
    """The kernels of a Conv2D layer of the run (None: the first convolution)."""
    convs = net.conv_layers()
    if not convs:
        raise UserError("This network has no convolution layer.")
    info = net.layer(layer) if layer else convs[0]
    if info.type != "Conv2D":
        raise UserError(
            f"{info.name} is a {info.type} layer: it has no filters. Pick one of {', '.join(c.name for c in convs)}."
        )
    kernel, bias = net.weights(info.name)[:2]
    return Filters(info.name, kernel, bias, bgr=net.cfg.model == "vgg16", first=info.name == convs[0].name)
