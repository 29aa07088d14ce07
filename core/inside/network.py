"""A stored run's network opened up: every layer's output for an image, its weights, its class scores.

:class:`RunNetwork` is built once per run from the stored model and is
read-only afterwards (the dashboard shares one per run between sessions). It
never touches the model it was given: it builds a *flat copy*, one new layer
per layer of the stored model with the weights copied in, as a single
functional graph from the image to the class scores. That copy:

- unnests the VGG16 transfer model, whose base is one nested layer (a
  sub-model into a nested base fails in Keras 3: "Output with path `0` is not
  connected"), so every VGG16 conv and pooling layer is reachable like the CNN's;
- ends in the class *scores* (logits): the last Dense layer is copied without
  its softmax, which is applied separately. Grad-CAM differentiates the score,
  as in Selvaraju et al. (2017); a softmax output flattens the gradient of a
  confident class towards zero.

The copy computes in float32 (see :func:`_flat_copy`). A run trained in mixed
bfloat16 gets a second copy in its own precision, for the numbers the stored
model itself gives (its probabilities, its penultimate features): computed as
``model.predict`` computes them, so they equal the stored predictions (what the
Predictions page shows) exactly, not to bfloat16's 2^-8 (the tests check it).
TensorFlow and Keras are imported inside the functions that need them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.config import ModelConfig
from core.base.errors import UserError
from core.models.layer_table import LayerRow, layer_table
from core.models.pipeline import model_input
from core.store.runstore import RunRecord, RunStore, UnknownRunError
from core.training.fit import PREDICT_BATCH

SPATIAL = ("Conv2D", "BatchNormalization", "MaxPooling2D")


class ModelMissingError(UserError):
    """The run is stored but its network file (model.keras) is not there."""


class UnknownLayerError(UserError):
    """The network has no spatial layer of this name."""

    @classmethod
    def of(cls, run_id: str, layer: str, names: list[str]) -> UnknownLayerError:
        return cls(
            f"Run {run_id} has no layer {layer!r} to look inside. Its convolution, normalisation and pooling "
            f"layers are: {', '.join(names)}."
        )


class UnknownClassError(UserError):
    """The run was not trained on a class of this name."""

    @classmethod
    def of(cls, run_id: str, name: str, classes: list[str]) -> UnknownClassError:
        return cls(f"Run {run_id} was trained on {', '.join(classes)}; it has no class {name!r}.")


@dataclass(frozen=True)
class LayerInfo:
    """One spatial layer (convolution, batch normalisation or pooling) of a stored network."""

    name: str
    type: str  # "Conv2D", "BatchNormalization" or "MaxPooling2D"
    output_shape: tuple[int, int, int]  # as Keras computed it, without the batch dimension
    kernel_size: int  # the window's side (1 for batch normalisation)
    stride: int
    padding: str  # "valid" or "same"
    receptive_field: int | None  # from the layer table (core.models.layer_table)
    jump: int | None
    depth: float  # 0 for the first spatial layer, 1 for the last: how deep in the network

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "receptive_field": self.receptive_field,
            "jump": self.jump,
        }


def open_run(store: RunStore, run_id: str, model: Any = None) -> RunNetwork:
    """The network of a stored run, ready to look inside.

    Args:
        store: the run store.
        run_id: the run's id (``python -m core runs`` lists them).
        model: the run's loaded Keras model if the caller has it already (it is
            copied, never changed); None: load it from the store.

    Raises:
        UnknownRunError: no stored run has this id.
        ModelMissingError: the run has no network file.
    """
    record = store.get(run_id)
    if record is None:
        raise UnknownRunError.of(run_id)
    if model is None:
        model = load_run_model(store, record)
    return RunNetwork(record, model)


def load_run_model(store: RunStore, record: RunRecord) -> Any:
    """The run's stored Keras model; :class:`ModelMissingError` when its file is missing."""
    if not store.model_path(record.run_id).exists():
        raise ModelMissingError(
            f"Run {record.run_id} ({record.label}) has no saved network file, so there is nothing to look "
            "inside. Train the configuration again (Train page, or `python -m core train --no-cache`)."
        )
    return store.load_model(record.run_id)


def _leaves(model: Any) -> list[Any]:
    """The layers of a linear stack, nested models unpacked, input layers left out."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out.extend(_leaves(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _flat_copy(model: Any, float32: bool = True) -> tuple[Any, list[Any]]:
    """A new functional model: the same layers (copies, weights copied), unnested, ending in logits.

    ``float32``: the copy computes in float32, whatever precision the run trained in
    (a bfloat16 run's weights are float32 anyway): a worked convolution in
    NumPy then equals the network's value to float tolerance, and gradients
    for Grad-CAM are not rounded to bfloat16's 8 bits. False: each layer keeps
    its own precision (the run's mixed bfloat16), for the stored model's own answer.
    """
    import keras

    leaves = _leaves(model)
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="image")
    h, copies = inputs, []
    for i, layer in enumerate(leaves):
        config = layer.get_config()
        if i == len(leaves) - 1 and config.get("activation") == "softmax":
            config["activation"] = "linear"
        if float32 and "dtype" in config:
            config["dtype"] = "float32"
        copy = type(layer).from_config(config)
        h = copy(h)
        copy.set_weights(layer.get_weights())
        copy.trainable = False
        copies.append(copy)
    return keras.Model(inputs, h, name=f"{model.name}_flat"), copies


class RunNetwork:
    """A stored run's network, opened up. Thread-safe; nothing in it changes after it is built.

    Attributes:
        record: the run's record.
        cfg: its :class:`~core.base.config.ModelConfig`.
        class_names: the classes it was trained on, in output order.
        layers: its spatial layers (:class:`LayerInfo`), input to output.
    """

    def __init__(self, record: RunRecord, model: Any):
        import keras

        self.record = record
        self.cfg = ModelConfig.from_dict(record.model_config)
        self.class_names: list[str] = list(record.test.get("class_names") or record.data.get("classes") or [])
        self._flat, leaves = _flat_copy(model)
        self._by_name = {layer.name: layer for layer in leaves}
        dense = [layer.name for layer in leaves if type(layer).__name__ == "Dense"]
        self._feature_layer = dense[-2] if len(dense) >= 2 else leaves[-2].name
        names = [layer.name for layer in leaves]
        # The stored model's own arithmetic: the float32 copy itself, or a copy in the run's mixed precision.
        self._own, own = (
            (self._flat, leaves) if _computes_in_float32(_leaves(model)) else _flat_copy(model, float32=False)
        )
        self._own_by_name = {layer.name: layer for layer in own}
        self._after_features = own[names.index(self._feature_layer) + 1 :]  # dropout (off), the class scores
        rows = _table_rows(self.cfg)
        spatial = [layer for layer in leaves if type(layer).__name__ in SPATIAL]
        self.layers: list[LayerInfo] = [
            _info(layer, rows.get(layer.name), i / max(len(spatial) - 1, 1)) for i, layer in enumerate(spatial)
        ]
        if len(self.class_names) != int(self._flat.outputs[0].shape[-1]):
            self.class_names = [f"class {i}" for i in range(int(self._flat.outputs[0].shape[-1]))]
        # One pass gives every spatial layer's output and the class scores.
        self._probe = keras.Model(
            self._flat.inputs[0], [self._by_name[la.name].output for la in self.layers] + [self._flat.outputs[0]]
        )
        self._lock = threading.Lock()
        self._sub: dict[str, Any] = {}

    # -- names --------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self._flat.inputs[0].shape[1:])  # type: ignore[return-value]

    def layer(self, name: str) -> LayerInfo:
        """The spatial layer called ``name``; :class:`UnknownLayerError` lists the names if there is none."""
        for info in self.layers:
            if info.name == name:
                return info
        raise UnknownLayerError.of(self.record.run_id, name, [la.name for la in self.layers])

    def conv_layers(self) -> list[LayerInfo]:
        return [la for la in self.layers if la.type == "Conv2D"]

    def class_index(self, name: str) -> int:
        """The output index of a class; :class:`UnknownClassError` lists the classes if there is none."""
        if name in self.class_names:
            return self.class_names.index(name)
        raise UnknownClassError.of(self.record.run_id, name, list(self.class_names))

    def next_layer(self, name: str) -> LayerInfo | None:
        """The spatial layer after ``name``, or None when the next layer is Flatten/GAP."""
        names = [la.name for la in self.layers]
        i = names.index(self.layer(name).name)
        return self.layers[i + 1] if i + 1 < len(self.layers) else None

    def previous_layer(self, name: str) -> LayerInfo | None:
        """The spatial layer before ``name``, or None when ``name`` reads the image."""
        names = [la.name for la in self.layers]
        i = names.index(self.layer(name).name)
        return self.layers[i - 1] if i > 0 else None

    # -- arrays -------------------------------------------------------------
    def prepare(self, images_uint8: np.ndarray) -> np.ndarray:
        """Images (H, W, C) or (N, H, W, C) uint8 at the run's size -> the (N, H, W, C) float32 batch the
        network reads (/255; VGG16's own preprocessing for a transfer run)."""
        images = np.asarray(images_uint8)
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:] != self.input_shape:
            raise UserError(
                f"The network reads {'x'.join(map(str, self.input_shape))} images; got an array of shape "
                f"{images.shape[1:]}. Decode images with core.data.read_image_bytes at the run's size."
            )
        return np.asarray(model_input(self.cfg, images.astype("float32") / 255.0), dtype="float32")

    def activations(self, image_uint8: np.ndarray) -> dict[str, np.ndarray]:
        """``{"input": what the first layer reads, layer name: its (H, W, C) output, ..., "scores": logits}``."""
        x = self.prepare(image_uint8)
        with self._lock:
            outs = self._probe(x, training=False)
        arrays = [np.asarray(o)[0] for o in outs]
        result = {"input": x[0]}
        result.update({la.name: a for la, a in zip(self.layers, arrays[:-1], strict=True)})
        result["scores"] = arrays[-1]
        return result

    def feature_maps(self, image_uint8: np.ndarray, layer: str) -> np.ndarray:
        """The (H, W, C) output of one spatial layer for one image."""
        self.layer(layer)
        model = self._submodel(layer)
        x = self.prepare(image_uint8)
        with self._lock:
            return np.asarray(model(x, training=False))[0]

    def layer_model(self, layer: str) -> Any:
        """A model from the prepared input to one spatial layer's output, built once per layer (call it under
        :attr:`lock`)."""
        return self._submodel(self.layer(layer).name)

    def pre_activation_model(self, layer: str) -> Any:
        """A model from the prepared input to a Conv2D layer's sums before its activation (its ReLU), built once
        per layer from a linear copy of the layer with the same weights (call it under :attr:`lock`)."""
        import keras

        name = self.layer(layer).name
        key = f"pre:{name}"
        with self._lock:
            if key not in self._sub:
                conv = self._by_name[name]
                linear = type(conv).from_config({**conv.get_config(), "activation": "linear", "name": f"{name}_sums"})
                sums = linear(conv.input)
                linear.set_weights(conv.get_weights())
                self._sub[key] = keras.Model(self._flat.inputs[0], sums)
            return self._sub[key]

    def layer_type(self, name: str) -> str | None:
        """The Keras class of any layer of the network ("Conv2D", "Dense", ...), or None when there is none."""
        layer = self._by_name.get(name)
        return None if layer is None else type(layer).__name__

    @property
    def output_layer(self) -> str:
        """The last layer's name: the Dense layer whose outputs are the class scores."""
        return self._flat.layers[-1].name

    def probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for images (N, H, W, C) uint8: the stored model's answer, in the
        run's own precision (a bfloat16 run's too), the same numbers the Predictions page shows."""
        if not len(images_uint8):
            return np.zeros((0, len(self.class_names)), dtype="float32")
        return softmax(self._predict(self._own, self.prepare(images_uint8)))

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Class scores (logits, before the softmax) of prepared inputs from the float32 copy, in batches of 64:
        the function whose gradients the saliency maps and activation maximisation follow (a bfloat16 run's
        own answer is :meth:`probabilities`)."""
        out = []
        with self._lock:
            for start in range(0, len(x), 64):
                out.append(np.asarray(self._flat(x[start : start + 64], training=False)))
        return np.concatenate(out).astype("float32")

    @property
    def feature_layer(self) -> str:
        """The penultimate layer: the Dense layer before the class scores (the course CNN's ``dense``; for
        VGG16 the head's hidden layer), whose output is the network's own description of an image."""
        return self._feature_layer

    def features(self, images_uint8: np.ndarray) -> np.ndarray:
        """The penultimate layer's output (N, units) float32 for images (N, H, W, C) uint8.

        Dropout, which sits between it and the class scores, is off (inference): these are the numbers the
        last layer turns into class scores, as the stored model computes them when it predicts (its own
        precision: a bfloat16 run's features are bfloat16 numbers), the ones its stored probabilities came from.
        """
        model = self._own_submodel(self._feature_layer)
        x = self.prepare(images_uint8) if len(images_uint8) else np.zeros((0, *self.input_shape), "float32")
        return self._predict(model, x)

    def _predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """``model``'s output for prepared inputs, float32, computed as the stored predictions were: by
        ``model.predict`` (a compiled graph) in batches of PREDICT_BATCH. A call outside a graph rounds a
        bfloat16 network differently (each op on its own rather than fused), by up to one bfloat16 step."""
        n_out = int(model.outputs[0].shape[-1])
        if not len(x):
            return np.zeros((0, n_out), dtype="float32")
        with self._lock:
            return np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), dtype="float32")

    def features_from_pooled(self, pooled: np.ndarray) -> np.ndarray:
        """For a VGG16 transfer run: the penultimate layer's output from the base's pooled 512 features (the
        GlobalAveragePooling2D output the head reads), e.g. the run's own cached ones; (N, units) float32."""
        layer = self._own_by_name[self._feature_layer]
        if int(layer.input.shape[-1]) != np.shape(pooled)[-1]:
            raise UserError(f"The {self._feature_layer} layer reads {layer.input.shape[-1]} numbers per image.")
        with self._lock:
            return np.asarray(layer(np.asarray(pooled, dtype="float32")), dtype="float32")

    def probabilities_from_features(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) from the penultimate layer's output: the rest of the network (dropout,
        off at inference; the last Dense layer; the softmax) without running the images through it again."""
        h = np.asarray(features, dtype="float32")
        with self._lock:
            for layer in self._after_features:
                h = layer(h, training=False)
        return softmax(np.asarray(h))

    def weights(self, layer: str) -> list[np.ndarray]:
        """A copy of a layer's weights (Conv2D: kernel (k, k, C, F), bias (F,); BatchNormalization: gamma,
        beta, moving mean, moving variance)."""
        self.layer(layer)
        return [np.array(w) for w in self._by_name[layer].get_weights()]

    def layer_config(self, layer: str) -> dict[str, Any]:
        """A layer's Keras config (activation, padding, ...)."""
        return dict(self._by_name[self.layer(layer).name].get_config())

    def epsilon(self, layer: str) -> float:
        """A BatchNormalization layer's epsilon."""
        return float(self._by_name[self.layer(layer).name].epsilon)

    # -- for core.inside.saliency -------------------------------------------
    def input_gradients(self, x: np.ndarray, class_index: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The gradient of one class's score (logit) with respect to prepared inputs (N, H, W, C), in batches.

        Returns ``(gradients, scores)``: (N, H, W, C) and (N,) float32, both in the prepared input's units
        (/255, or VGG16's preprocessing), computed in float32 whatever precision the run trained in.
        """
        import tensorflow as tf

        grads, scores = [], []
        with self._lock:
            for start in range(0, len(x), batch):
                chunk = tf.constant(np.asarray(x[start : start + batch], dtype="float32"))
                with tf.GradientTape() as tape:
                    tape.watch(chunk)
                    score = self._flat(chunk, training=False)[:, class_index]
                grads.append(tape.gradient(score, chunk).numpy())
                scores.append(score.numpy())
        return np.concatenate(grads), np.concatenate(scores).astype("float32")

    def weighted_layers(self) -> list[str]:
        """The names of the layers that hold weights (convolutions, batch normalisations, Dense), input first."""
        return [layer.name for layer in self._flat.layers if layer.weights]

    def randomised(self, layers: list[str], seed: int = 0) -> RunNetwork:
        """A new network: a copy of this one with the named layers' weights drawn again as Keras first draws
        them (kernels Glorot-uniform from ``seed``, biases and batch-norm shifts 0, scales 1). This network,
        and the stored model it was copied from, are not changed. The same ``seed`` gives the same weights."""
        unknown = [name for name in layers if name not in self.weighted_layers()]
        if unknown:
            raise UserError(
                f"Run {self.record.run_id} has no layer with weights called {', '.join(unknown)}. Its layers with "
                f"weights are: {', '.join(self.weighted_layers())}."
            )
        with self._lock:
            copy = RunNetwork(self.record, self._flat)
        rng = np.random.default_rng(seed)
        for name in layers:
            layer = copy._by_name[name]
            layer.set_weights([_initial(w.name, tuple(w.shape), rng) for w in layer.weights])
        return copy

    # -- for core.inside.gradcam --------------------------------------------
    def score_model(self, layer: str) -> Any:
        """A model from the image to (``layer``'s output, the class scores), built once per layer."""
        import keras

        key = f"scores:{self.layer(layer).name}"
        with self._lock:
            if key not in self._sub:
                self._sub[key] = keras.Model(self._flat.inputs[0], [self._by_name[layer].output, self._flat.outputs[0]])
            return self._sub[key]

    @property
    def lock(self) -> threading.Lock:
        """Held while the network computes (TensorFlow calls of one model are serialised)."""
        return self._lock

    def _own_submodel(self, layer: str) -> Any:
        """A model from the image to ``layer``'s output in the run's own precision, built once."""
        import keras

        key = f"own:{layer}"
        with self._lock:
            if key not in self._sub:
                self._sub[key] = keras.Model(self._own.inputs[0], self._own_by_name[layer].output)
            return self._sub[key]

    def _submodel(self, layer: str) -> Any:
        import keras

        with self._lock:
            if layer not in self._sub:
                self._sub[layer] = keras.Model(self._flat.inputs[0], self._by_name[layer].output)
            return self._sub[layer]


def _computes_in_float32(layers: list[Any]) -> bool:
    """Whether every layer computes in float32 (not a mixed bfloat16 run)."""
    return all(str(getattr(layer, "compute_dtype", "float32")) == "float32" for layer in layers)


def softmax(scores: np.ndarray) -> np.ndarray:
    z = np.asarray(scores, dtype="float64")
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype("float32")


def _initial(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A weight as Keras initialises it: a kernel Glorot-uniform, a scale (gamma, moving variance) 1, else 0."""
    if kind in ("gamma", "moving_variance"):
        return np.ones(shape, dtype="float32")
    if kind != "kernel":
        return np.zeros(shape, dtype="float32")
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype("float32")


def _table_rows(cfg: ModelConfig) -> dict[str, LayerRow]:
    rows: dict[str, LayerRow] = {}
    for row in layer_table(cfg).rows:
        rows[row.name] = row
        rows.update({c.name: c for c in row.children})
    return rows


def _info(layer: Any, row: LayerRow | None, depth: float) -> LayerInfo:
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind == "Conv2D":
        k, s = int(cfg["kernel_size"][0]), int(cfg["strides"][0])
    elif kind == "MaxPooling2D":
        k, s = int(cfg["pool_size"][0]), int((cfg.get("strides") or cfg["pool_size"])[0])
    else:
        k, s = 1, 1
    return LayerInfo(
        name=layer.name,
        type=kind,
        output_shape=tuple(int(d) for d in layer.output.shape[1:]),  # type: ignore[arg-type]
        kernel_size=k,
        stride=s,
        padding=str(cfg.get("padding", "valid")),
        receptive_field=row.receptive_field if row else None,
        jump=row.jump if row else None,
        depth=depth,
    )
