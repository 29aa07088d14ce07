"""The layer table: every layer's output shape and parameter count, without Keras.

This is the arithmetic ``model.summary()`` does, written out so a student can
follow it and so the Architecture page can redraw it as a slider moves (pure
Python: microseconds, no TensorFlow). ``tests/test_layers.py`` checks it
against Keras' own counts on many random configurations.

The rules:

- Conv2D with ``k x k`` kernels and ``f`` filters on ``c`` input channels has
  ``f x (k x k x c + 1)`` parameters (one bias per filter). With "valid"
  padding the map shrinks by ``k - 1``; with "same" it keeps its size.
- MaxPooling2D with a ``p x p`` window (stride ``p``) has no weights and
  divides the map by ``p``, rounding down.
- BatchNormalization has 4 numbers per channel: gamma and beta are trained,
  the moving mean and variance are not.
- Flatten and Dropout have no weights; Dense has ``units x (inputs + 1)``.

Each spatial row also says how many input pixels one of its units sees (its
``receptive_field``, the side of a square) and how far apart, in input pixels,
two neighbouring units are (its ``jump``). A ``k x k`` layer with stride ``s``
grows the field by ``(k - 1) x jump`` and multiplies the jump by ``s``; padding
does not change them (with "same" the field near the border partly covers the
zero border). The course network: 3, 4, 8, 10, 18, 22. Units of Flatten, Dense
and GlobalAveragePooling2D see the whole image: their two values are None.

Each row also counts the multiply-adds one image's forward pass makes in it
(:attr:`LayerRow.macs`): a Conv2D makes one per kernel weight per output
position (``h x w x f x k x k x c``), a Dense one per weight without the
biases (``units x inputs``), BatchNormalization one per value; pooling, Flatten
and Dropout make none worth counting. :mod:`core.jobs.estimate` turns them into a
training time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.base.config import ModelConfig
from core.base.errors import UserError
from core.base.limits import bytes_text, max_activation_bytes, max_params

BYTES_PER_VALUE = 4  # float32

# VGG16's convolutional base (include_top=False): (block, convs, filters).
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG16_MIN_INPUT = 32  # five 2x2 poolings: 32 -> 1


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    trainable: int
    formula: str
    children: tuple[LayerRow, ...] = ()
    receptive_field: int | None = None  # input pixels one unit sees (side of a square); None: the whole image
    jump: int | None = None  # input pixels between neighbouring units

    @property
    def non_trainable(self) -> int:
        return self.params - self.trainable

    @property
    def macs(self) -> int:
        """Multiply-adds of one image's forward pass through this layer (a nested base: its layers' sum)."""
        if self.children:
            return sum(c.macs for c in self.children)
        if self.type == "Conv2D":  # params - biases = f x k x k x c weights, each used at every output position
            h, w, f = self.output_shape
            return h * w * (self.params - f)
        if self.type == "Dense":  # units x inputs
            return self.params - self.output_shape[0]
        if self.type == "BatchNormalization":  # scale and shift: one per value
            return math.prod(self.output_shape)
        return 0

    def to_dict(self, children: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "trainable": self.trainable,
            "formula": self.formula,
            "receptive_field": self.receptive_field,
            "jump": self.jump,
            "macs": self.macs,
        }
        if children and self.children:
            d["children"] = [c.to_dict() for c in self.children]
        return d


@dataclass(frozen=True)
class LayerTable:
    rows: tuple[LayerRow, ...]
    input_shape: tuple[int, int, int]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        """Multiply-adds of one image's forward pass through the whole network."""
        return sum(r.macs for r in self.rows)

    def to_dict(self, children: bool = False) -> dict[str, Any]:
        """The shape of ``python -m core summary --json``."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [r.to_dict(children) for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
        }


@dataclass(frozen=True)
class ArchitectureProblem:
    """Why a configuration cannot be built, and which control to change."""

    field: str  # the ModelConfig field to change first
    block: int | None  # 1-based conv block where it happens, if any
    message: str


class ArchitectureError(UserError):
    """The network cannot be built on its input; ``problems`` say why and which control to change."""

    def __init__(self, problems: list[ArchitectureProblem]):
        self.problems = problems
        super().__init__(" ".join(p.message for p in problems))


def _grow(rf: int, jump: int, k: int, stride: int) -> tuple[int, int]:
    """Receptive field and jump after a ``k x k`` window moved ``stride`` pixels at a time."""
    return rf + (k - 1) * jump, jump * stride


def _n(x: int) -> str:
    return f"{x:,}"


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in s)


def check_architecture(cfg: ModelConfig) -> list[ArchitectureProblem]:
    """Every reason ``cfg`` cannot be built on its input size; empty if it can."""
    if cfg.model == "vgg16":
        if cfg.input_size < VGG16_MIN_INPUT:
            return [
                ArchitectureProblem(
                    "input_size",
                    None,
                    f"VGG16 needs inputs of at least {VGG16_MIN_INPUT}x{VGG16_MIN_INPUT}: its five 2x2 "
                    f"poolings halve the map five times. Got {cfg.input_size}x{cfg.input_size}; "
                    f"raise the input size to {VGG16_MIN_INPUT} or more.",
                )
            ]
        return []

    size = cfg.input_size
    k, p = cfg.kernel_size, cfg.pool_size
    for i, _ in enumerate(cfg.block_filters(), start=1):
        where = f"the {size}x{size} input image" if i == 1 else f"the {size}x{size} map left after block {i - 1}"
        if cfg.padding == "valid":
            if size < k:
                return [
                    ArchitectureProblem(
                        "kernel_size" if i == 1 else "blocks",
                        i,
                        f"Block {i}: a {k}x{k} kernel does not fit on {where} "
                        f"with 'valid' padding. Use fewer blocks "
                        f"(at most {i - 1}), a smaller kernel, padding 'same' or a larger input.",
                    )
                ]
            size = size - k + 1
        if size < p:
            return [
                ArchitectureProblem(
                    "pool_size" if i == 1 else "blocks",
                    i,
                    f"Block {i}: {p}x{p} pooling cannot shrink a {size}x{size} feature map "
                    f"(it would leave 0x0). Use fewer blocks (at most {i - 1}), a smaller "
                    f"pool size, padding 'same' or a larger input.",
                )
            ]
        size //= p
    return []


def require_buildable(*cfgs: ModelConfig, batch_size: int | None = None) -> None:
    """Raise :class:`ArchitectureError` with every problem of the given configs; return if all can be built.

    A network that fits its input but is larger than this server allows
    (:func:`check_cost`) is refused too; its activation memory is checked
    when ``batch_size`` is given.
    """
    problems = []
    for cfg in cfgs:
        shape_problems = check_architecture(cfg)
        problems += shape_problems or check_cost(cfg, batch_size)
    if problems:
        raise ArchitectureError(problems)


def activation_values(table: LayerTable) -> int:
    """Values one image produces through the network: the input and every layer's output (VGG16's inside)."""
    total = _prod(table.input_shape)
    for r in table.rows:
        total += sum(_prod(c.output_shape) for c in r.children) if r.children else _prod(r.output_shape)
    return total


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_cost(cfg: ModelConfig, batch_size: int | None = None) -> list[ArchitectureProblem]:
    """Why this server refuses to train ``cfg`` (too many parameters, or too much memory for one batch).

    Parameters are all the network's weights, frozen ones included (limit
    ``CNNLAB_MAX_PARAMS``). Activation memory is what training keeps for the
    backward pass: ``batch_size`` x every layer's output values x 4 bytes
    (limit ``CNNLAB_MAX_ACTIVATION_MB``); skipped when ``batch_size`` is None.
    Assumes ``cfg`` fits its input (:func:`check_architecture`).
    """
    table = _table(cfg)
    problems = []
    limit = max_params()
    if table.total_params > limit:
        heaviest = max(table.rows, key=lambda r: r.params)
        field, fix = "dense_units", "fewer dense units, more blocks or a larger pool size to shrink the map first"
        if heaviest.type != "Dense":
            field, fix = "filters", "fewer filters"
        elif cfg.model == "vgg16":
            fix = "fewer dense units"
        problems.append(
            ArchitectureProblem(
                field,
                None,
                f"This network has {table.total_params:,} parameters, more than the {limit:,} this server trains "
                f"(CNNLAB_MAX_PARAMS). Its largest layer, {heaviest.name}, has {heaviest.params:,}: use {fix}.",
            )
        )
    if batch_size is not None:
        need = activation_values(table) * batch_size * BYTES_PER_VALUE
        cap = max_activation_bytes()
        if need > cap:
            problems.append(
                ArchitectureProblem(
                    "input_size",
                    None,
                    f"One training batch of {batch_size} images needs about {bytes_text(need)} for its activations "
                    f"(every layer's outputs), more than the {bytes_text(cap)} this server allows "
                    "(CNNLAB_MAX_ACTIVATION_MB). Use a smaller input size, fewer filters or a smaller batch size.",
                )
            )
    return problems


def layer_table(cfg: ModelConfig) -> LayerTable:
    """The layer-by-layer table of ``cfg``; raises ArchitectureError if it does not fit its input.

    A network larger than the server allows still gets its table (that is how
    a student sees why); :func:`check_cost` and :func:`require_buildable` refuse it.
    """
    problems = check_architecture(cfg)
    if problems:
        raise ArchitectureError(problems)
    return _table(cfg)


def _table(cfg: ModelConfig) -> LayerTable:
    if cfg.model == "vgg16":
        return _vgg16_table(cfg)
    return _cnn_table(cfg)


def _cnn_table(cfg: ModelConfig) -> LayerTable:
    rows: list[LayerRow] = []
    h = cfg.input_size
    c = cfg.channels
    k, p = cfg.kernel_size, cfg.pool_size
    rf, jump = 1, 1
    for i, (f, (conv_side, pool_side)) in enumerate(zip(cfg.block_filters(), cfg.block_sides(), strict=True), start=1):
        params = f * (k * k * c + 1)
        rf, jump = _grow(rf, jump, k, 1)
        h_in, h = h, conv_side
        shrink = f"map {h_in}->{h} (valid: minus {k - 1})" if cfg.padding == "valid" else f"map stays {h}x{h} (same)"
        rows.append(
            LayerRow(
                f"block{i}_conv",
                "Conv2D",
                (h, h, f),
                params,
                params,
                f"{f} x ({k}x{k}x{c} + 1) = {_n(params)}; {shrink}",
                receptive_field=rf,
                jump=jump,
            )
        )
        if cfg.batchnorm:
            rows.append(
                LayerRow(
                    f"block{i}_bn",
                    "BatchNormalization",
                    (h, h, f),
                    4 * f,
                    2 * f,
                    f"4 x {f} = {_n(4 * f)} ({_n(2 * f)} trainable gamma, beta; "
                    f"{_n(2 * f)} frozen moving mean, variance)",
                    receptive_field=rf,
                    jump=jump,
                )
            )
        h_in, h = h, pool_side
        rf, jump = _grow(rf, jump, p, p)
        rows.append(
            LayerRow(
                f"block{i}_pool",
                "MaxPooling2D",
                (h, h, f),
                0,
                0,
                f"no weights: max of each {p}x{p} window, {h_in}/{p} -> {h}",
                receptive_field=rf,
                jump=jump,
            )
        )
        c = f
    flat = h * h * c
    rows.append(LayerRow("flatten", "Flatten", (flat,), 0, 0, f"no weights: {h}x{h}x{c} = {_n(flat)} values"))
    rows.extend(_head(flat, cfg))
    return LayerTable(tuple(rows), cfg.input_shape())


def _head(n_in: int, cfg: ModelConfig) -> list[LayerRow]:
    u, n = cfg.dense_units, cfg.num_classes
    dense = u * (n_in + 1)
    out = n * (u + 1)
    return [
        LayerRow("dense", "Dense", (u,), dense, dense, f"{u} x ({_n(n_in)} + 1) = {_n(dense)}"),
        LayerRow(
            "dropout",
            "Dropout",
            (u,),
            0,
            0,
            f"no weights: zeroes {cfg.dropout:.0%} of the {u} values, in training only",
        ),
        LayerRow("output", "Dense", (n,), out, out, f"{n} x ({u} + 1) = {_n(out)}; softmax"),
    ]


def vgg16_base_rows(input_size: int) -> tuple[LayerRow, ...]:
    """VGG16's 13 conv and 5 pooling layers, named as in keras.applications."""
    rows: list[LayerRow] = []
    h, c = input_size, 3
    rf, jump = 1, 1
    for block, convs, f in VGG16_BLOCKS:
        for j in range(1, convs + 1):
            params = f * (3 * 3 * c + 1)
            rf, jump = _grow(rf, jump, 3, 1)
            rows.append(
                LayerRow(
                    f"block{block}_conv{j}",
                    "Conv2D",
                    (h, h, f),
                    params,
                    0,
                    f"{f} x (3x3x{c} + 1) = {_n(params)}; frozen",
                    receptive_field=rf,
                    jump=jump,
                )
            )
            c = f
        h_in = h
        h //= 2
        rf, jump = _grow(rf, jump, 2, 2)
        rows.append(
            LayerRow(
                f"block{block}_pool",
                "MaxPooling2D",
                (h, h, f),
                0,
                0,
                f"no weights: {h_in}/2 -> {h}",
                receptive_field=rf,
                jump=jump,
            )
        )
    return tuple(rows)


def _vgg16_table(cfg: ModelConfig) -> LayerTable:
    children = vgg16_base_rows(cfg.input_size)
    base_params = sum(r.params for r in children)
    h = children[-1].output_shape[0]
    base = LayerRow(
        "vgg16",
        "Functional (VGG16 base)",
        (h, h, 512),
        base_params,
        0,
        f"13 conv layers, 5 poolings: {_n(base_params)} frozen parameters",
        children,
        children[-1].receptive_field,
        children[-1].jump,
    )
    gap = LayerRow("gap", "GlobalAveragePooling2D", (512,), 0, 0, f"no weights: mean of each {h}x{h} map")
    return LayerTable((base, gap, *_head(512, cfg)), cfg.input_shape())
