"""A convolution worked by hand at one unit, then the batch normalisation and pooling that follow it.

The course's layer table says ``896 = 32 x (3x3x3 + 1)``; :func:`work_convolution`
shows one of those 32 filters at work on one image: the k x k x C patch of the
layer's input the unit reads, the filter's k x k x C weights, their products,
the sum, plus the bias, then the ReLU. The result is compared with the value
the network itself computed at that unit (they agree to float precision: the
tests hold them to 1e-4). In the course's network with batch normalisation,
BatchNormalization comes *after* the convolution's ReLU (Conv2D has
``activation="relu"`` built in), so that is the order shown; then the max
pooling window the unit falls in.

Padding follows TensorFlow's rule: "same" pads ``k - 1`` pixels in total
(for stride 1), half before (rounded down) and the rest after; the padded
pixels read 0 and are marked in :attr:`WorkedConvolution.inside`.
Pure NumPy on the arrays :class:`core.inside.network.RunNetwork` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.errors import UserError
from core.inside.network import RunNetwork


@dataclass(frozen=True)
class BatchNormStep:
    """``gamma x (x - mean) / sqrt(variance + epsilon) + beta`` at the worked unit."""

    layer: str
    x: float
    gamma: float
    beta: float
    mean: float
    variance: float
    epsilon: float
    value: float  # computed here
    model_value: float  # what the network computed


@dataclass(frozen=True)
class PoolStep:
    """The max pooling window the worked unit falls in."""

    layer: str
    size: int
    stride: int
    out_row: int
    out_col: int
    top: int  # the window's first row and column in the pooled map's input
    left: int
    window: np.ndarray  # (size, size) values of the unit's channel (-inf outside the map)
    value: float  # the window's maximum
    model_value: float
    argmax: tuple[int, int]  # where the maximum is, inside the window


@dataclass(frozen=True)
class WorkedConvolution:
    """One unit of a Conv2D layer's output computed by hand; every array is (k, k, C)."""

    layer: str
    row: int
    col: int
    channel: int  # the filter
    input_name: str  # "input" (the prepared image) or the layer the convolution reads
    padding: str
    stride: int
    filters: int  # F: filters of the layer
    patch: np.ndarray
    inside: np.ndarray  # (k, k) bool: False where the window hangs over the zero border ("same")
    kernel: np.ndarray
    products: np.ndarray
    total: float  # the sum of the products
    bias: float
    pre_activation: float  # total + bias
    activation: str  # "relu" or "linear"
    value: float  # after the activation: the unit's value computed by hand
    model_value: float  # the same unit as the network computed it
    batchnorm: BatchNormStep | None
    pool: PoolStep | None
    pool_note: str  # why there is no pooling step, if there is none

    @property
    def kernel_size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.kernel.shape[2])

    @property
    def weights_per_filter(self) -> int:
        """k x k x C weights + 1 bias: one filter's share of the layer's parameters."""
        return self.kernel_size**2 * self.in_channels + 1

    def per_channel(self) -> np.ndarray:
        """The sum of the products over each input channel (C,): they add up to :attr:`total`."""
        return self.products.sum(axis=(0, 1))

    def to_dict(self) -> dict[str, Any]:
        d = {
            "layer": self.layer,
            "row": self.row,
            "col": self.col,
            "channel": self.channel,
            "input": self.input_name,
            "padding": self.padding,
            "stride": self.stride,
            "patch": self.patch.tolist(),
            "inside": self.inside.tolist(),
            "kernel": self.kernel.tolist(),
            "products": self.products.tolist(),
            "sum": self.total,
            "bias": self.bias,
            "pre_activation": self.pre_activation,
            "activation": self.activation,
            "value": self.value,
            "model_value": self.model_value,
            "formula": f"{self.filters} x ({self.kernel_size}x{self.kernel_size}x{self.in_channels} + 1) = "
            f"{self.filters * self.weights_per_filter:,}",
        }
        if self.batchnorm is not None:
            d["batchnorm"] = {k: v for k, v in vars(self.batchnorm).items()}
        if self.pool is not None:
            d["pool"] = {**vars(self.pool), "window": self.pool.window.tolist(), "argmax": list(self.pool.argmax)}
        return d


def _start(index: int, stride: int, k: int, in_size: int, out_size: int, padding: str) -> int:
    """Where (in the unpadded input) the window of output ``index`` starts; negative inside a 'same' border."""
    if padding == "same":
        pad_total = max((out_size - 1) * stride + k - in_size, 0)
        return index * stride - pad_total // 2
    return index * stride


def _window(array: np.ndarray, top: int, left: int, k: int, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """``array[top:top+k, left:left+k, ...]`` with ``fill`` outside it, and the mask of what is inside."""
    h, w = array.shape[:2]
    out = np.full((k, k, *array.shape[2:]), fill, dtype="float64")
    inside = np.zeros((k, k), dtype=bool)
    for i in range(k):
        for j in range(k):
            r, c = top + i, left + j
            if 0 <= r < h and 0 <= c < w:
                out[i, j] = array[r, c]
                inside[i, j] = True
    return out, inside


def work_convolution(
    net: RunNetwork,
    image_uint8: np.ndarray,
    layer: str,
    row: int,
    col: int,
    channel: int,
    activations: dict[str, np.ndarray] | None = None,
) -> WorkedConvolution:
    """Compute one unit of a Conv2D layer by hand and set it beside the network's own value.

    Args:
        net: the run's network (:func:`core.inside.network.open_run`).
        image_uint8: one image (H, W, C) at the run's size.
        layer: the name of a Conv2D layer.
        row, col: the unit's position in the layer's output map (0-based).
        channel: the filter (0-based).
        activations: ``net.activations(image_uint8)`` if already computed.

    Raises:
        UnknownLayerError: no such layer. UserError: not a convolution, or the unit is outside the map.
    """
    info = net.layer(layer)
    if info.type != "Conv2D":
        names = ", ".join(la.name for la in net.conv_layers())
        raise UserError(f"{layer} is a {info.type} layer, not a convolution: pick one of {names}.")
    h, w, f = info.output_shape
    for what, value, size in (("row", row, h), ("column", col, w), ("channel", channel, f)):
        if not 0 <= value < size:
            raise UserError(f"The {what} of a unit of {layer} must be in 0..{size - 1}. Got {value} instead.")
    acts = activations if activations is not None else net.activations(image_uint8)
    previous = net.previous_layer(layer)
    input_name = previous.name if previous else "input"
    x = acts[input_name]
    kernel_all, bias_all = net.weights(layer)[:2]
    k, s = info.kernel_size, info.stride
    top = _start(row, s, k, x.shape[0], h, info.padding)
    left = _start(col, s, k, x.shape[1], w, info.padding)
    patch, inside = _window(x, top, left, k, 0.0)
    kernel = kernel_all[:, :, :, channel].astype("float64")
    products = patch * kernel
    total = float(products.sum())
    bias = float(bias_all[channel])
    activation = str(net.layer_config(layer).get("activation", "linear"))
    pre = total + bias
    value = max(pre, 0.0) if activation == "relu" else pre
    out_name = layer
    bn = None
    after = net.next_layer(layer)
    if after is not None and after.type == "BatchNormalization":
        gamma, beta, mean, var = (float(a[channel]) for a in net.weights(after.name))
        eps = net.epsilon(after.name)
        bn_value = gamma * (value - mean) / np.sqrt(var + eps) + beta
        bn = BatchNormStep(
            after.name, value, gamma, beta, mean, var, eps, float(bn_value), float(acts[after.name][row, col, channel])
        )
        out_name = after.name
        after = net.next_layer(after.name)
    pool, note = None, ""
    if after is not None and after.type == "MaxPooling2D":
        pool, note = _pool_step(after, acts[out_name], acts[after.name], row, col, channel)
    elif after is None:
        note = "This is the last convolution: its maps go to the classifier head, not to a pooling layer."
    else:
        note = f"The next layer, {after.name}, is another convolution: no pooling right after this one."
    return WorkedConvolution(
        layer=layer,
        row=row,
        col=col,
        channel=channel,
        input_name=input_name,
        padding=info.padding,
        stride=s,
        filters=f,
        patch=patch,
        inside=inside,
        kernel=kernel,
        products=products,
        total=total,
        bias=bias,
        pre_activation=pre,
        activation=activation,
        value=float(value),
        model_value=float(acts[layer][row, col, channel]),
        batchnorm=bn,
        pool=pool,
        pool_note=note,
    )


def _pool_step(info, before: np.ndarray, after: np.ndarray, row: int, col: int, channel: int):
    p, s = info.kernel_size, info.stride
    oh, ow = after.shape[:2]
    out_row, out_col = min(row // s, oh - 1), min(col // s, ow - 1)
    top = _start(out_row, s, p, before.shape[0], oh, info.padding)
    left = _start(out_col, s, p, before.shape[1], ow, info.padding)
    if not (top <= row < top + p and left <= col < left + p):
        return None, (
            f"No {p}x{p} window of {info.name} covers this unit: pooling rounds down and drops the last "
            f"row or column of a {before.shape[0]}x{before.shape[1]} map. Pick another unit to see the pooling step."
        )
    window, _ = _window(before[:, :, channel : channel + 1], top, left, p, -np.inf)
    window = window[:, :, 0]
    am = np.unravel_index(int(np.argmax(window)), window.shape)
    step = PoolStep(
        info.name,
        p,
        s,
        out_row,
        out_col,
        top,
        left,
        window,
        float(window.max()),
        float(after[out_row, out_col, channel]),
        (int(am[0]), int(am[1])),
    )
    return step, ""
