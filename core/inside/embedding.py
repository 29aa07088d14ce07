"""Where the classes sit in the network's own feature space, across all of a run's test images.

The penultimate layer (the Dense layer before the class scores: the course CNN's ``dense``, VGG16's head
``dense``) describes each image by a few dozen numbers; the last layer only draws lines between those
descriptions. :func:`embed` takes them for the run's test images (and, if asked, its training images, read
and split again exactly as the training split them: :func:`training_split`) and

- projects them to 2-D with **PCA** (scikit-learn, exact SVD: the same picture every time) or **t-SNE**
  (scikit-learn, PCA start, seed :data:`SEED`: the same picture every time on one machine), and
- measures how well the classes separate there with one number: the **k-nearest-neighbour accuracy** in
  the full feature space (k = :data:`K`, leave-one-out: each image is named by the majority class of its
  5 nearest other test images), set beside the network's own test accuracy. It is measured in the
  features, not in the picture, so it does not depend on the projection; the picture's own k-NN accuracy
  (``knn_accuracy_2d``) says how much of that a flat picture keeps.

The test images' predictions and confidences are the stored ones (the Predictions page's), so a point
marked wrong here is wrong there too; training images are predicted from their features by the network's
last layer.
The number and the sentence are about the test images only. scikit-learn is imported inside the functions
(it is slow to import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.base.tables import plural
from core.data import load_dataset
from core.inside.network import RunNetwork, UnknownRunError, open_run
from core.store.runstore import RunRecord, RunStore
from core.training.base_features import FEATURES_KIND
from core.training.experiment import run_split

METHODS = {"pca": "PCA", "tsne": "t-SNE"}  # --method value: its name on the page
K = 5  # neighbours that vote in the separation number
SEED = 0  # t-SNE's random state: the same picture every time
CLOSE = 0.05  # k-NN and network accuracy within this are "about the same"
# ONE_THREAD: scikit-learn's t-SNE (Barnes-Hut) and neighbour search run OpenMP threads, one per core. On a
# busy machine (a classroom server) those threads wait on each other: t-SNE of 200 images took 22 s with all
# threads and 2.0 s with one (bench/RESULTS.md). One thread also sums in one order: the same picture every time.


@dataclass(frozen=True)
class Embedding:
    """A run's test images (then, if asked, its training images) in its penultimate layer's feature space, in 2-D.

    Points ``0 .. n_test - 1`` are the test images in the order of the run's stored test arrays; the rest,
    if any, are its training images in the order of the training split.
    """

    run_id: str
    method: str  # "pca" or "tsne"
    layer: str  # the penultimate layer's name
    units: int  # numbers per image in that layer
    coords: np.ndarray  # (N, 2) float32: the picture
    labels: np.ndarray  # (N,) int: true class
    predicted: np.ndarray  # (N,) int: the network's answer (stored)
    confidence: np.ndarray  # (N,) float32: the network's probability of its answer
    class_names: list[str]
    k: int  # neighbours that voted (K, fewer when there are very few images)
    knn_accuracy: float | None  # leave-one-out k-NN accuracy in the features; None: too few images
    knn_accuracy_2d: float | None  # the same in the 2-D picture
    model_accuracy: float  # the network's accuracy on the test images (the stored predictions)
    explained: tuple[float, float] | None  # PCA: the share of the features' variance each axis shows
    n_test: int  # the first n_test points are test images, the others training images

    @property
    def wrong(self) -> np.ndarray:
        """(N,) bool: the images the network misclassified."""
        return self.labels != self.predicted

    @property
    def mistakes(self) -> list[int]:
        """The test images the network misclassified (their indices in the stored test arrays)."""
        return [int(i) for i in np.flatnonzero(self.wrong[: self.n_test])]

    @property
    def is_test(self) -> np.ndarray:
        """(N,) bool: True for the test images, False for training images."""
        return np.arange(len(self.labels)) < self.n_test

    @property
    def method_name(self) -> str:
        return METHODS[self.method]

    def sentence(self) -> str:
        """The separation number in one sentence a student reads."""
        n = self.n_test
        if self.knn_accuracy is None:
            return f"With {plural(n, 'test image')} there are too few neighbours to measure how the classes separate."
        knn, acc = self.knn_accuracy, self.model_accuracy
        if knn >= acc + CLOSE:
            reading = "the neighbours do better, so these numbers hold more than the last layer makes of them"
        elif knn > acc - CLOSE:
            reading = "the classes sit there in groups about as clean as the network's answers"
        else:
            reading = (
                "the classes overlap there more than its answers suggest (the last layer separates them along a few "
                "directions, not by closeness)"
            )
        return (
            f"In the {self.layer} layer's {self.units} numbers per image, "
            f"an image's {plural(self.k, 'nearest neighbour')} name its true class for {knn:.0%} of the "
            f"{plural(n, 'test image')}, and the network itself is right on {acc:.0%}: {reading}."
        )

    def axis_titles(self) -> tuple[str, str]:
        if self.explained is None:
            return f"{self.method_name} 1", f"{self.method_name} 2"
        return tuple(f"PCA {i + 1} ({share:.0%} of the variance)" for i, share in enumerate(self.explained))  # type: ignore[return-value]

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """Everything as JSON: the separation numbers and, per image, its coordinates, label and prediction."""

        def rounded(x: float | None) -> float | None:
            return None if x is None else round(float(x), digits)

        return {
            "run_id": self.run_id,
            "method": self.method,
            "layer": self.layer,
            "units": self.units,
            "classes": list(self.class_names),
            "k": self.k,
            "knn_accuracy": rounded(self.knn_accuracy),
            "knn_accuracy_2d": rounded(self.knn_accuracy_2d),
            "model_accuracy": rounded(self.model_accuracy),
            "explained_variance": None if self.explained is None else [rounded(e) for e in self.explained],
            "sentence": self.sentence(),
            "test_images": self.n_test,
            "training_images": len(self.labels) - self.n_test,
            "points": [
                {
                    "split": "test" if i < self.n_test else "train",
                    "index": i if i < self.n_test else i - self.n_test,
                    "x": rounded(x),
                    "y": rounded(y),
                    "true": self.class_names[t],
                    "predicted": self.class_names[p],
                    "confidence": rounded(c),
                }
                for i, ((x, y), t, p, c) in enumerate(
                    zip(
                        self.coords.tolist(),
                        self.labels.tolist(),
                        self.predicted.tolist(),
                        self.confidence.tolist(),
                        strict=True,
                    )
                )
            ],
        }


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"The projection must be one of {', '.join(METHODS)}. Got {method!r} instead.")
    return method


def project(features: np.ndarray, method: str) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Features (N, D) -> ((N, 2) coordinates, PCA's explained variance ratios or None).

    PCA is scikit-learn's with the exact (full) SVD, so the signs of its axes are fixed (svd_flip) and the
    picture is the same every time. t-SNE starts from PCA, with seed :data:`SEED` and a perplexity below
    the number of images (30, or a third of them for small sets).
    """
    check_method(method)
    x = np.asarray(features, dtype="float64")
    n = len(x)
    if n < 3:
        raise UserError(f"A map needs at least 3 images; this run has {plural(n, 'test image')}.")
    from threadpoolctl import threadpool_limits  # scikit-learn's own, imported with it (late)

    with threadpool_limits(1):  # see ONE_THREAD
        return _project(x, method)


def _project(x: np.ndarray, method: str) -> tuple[np.ndarray, tuple[float, float] | None]:
    n = len(x)
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full").fit(x)
        coords = pca.transform(x)
        ratios = np.nan_to_num(pca.explained_variance_ratio_)
        return coords.astype("float32"), (float(ratios[0]), float(ratios[1]))
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=SEED)
    return tsne.fit_transform(x).astype("float32"), None


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = K) -> tuple[float | None, int]:
    """Leave-one-out k-nearest-neighbour accuracy: (accuracy or None when n < 2, the k used).

    Each point is named by the majority class of its ``k`` nearest *other* points (Euclidean); a tie goes
    to the tied class whose member is nearest.
    """
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype="float64")
    y = np.asarray(labels, dtype=np.int64)
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return None, 0
    with threadpool_limits(1):  # see ONE_THREAD
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    right = 0
    for i, row in enumerate(idx):
        others = [j for j in row if j != i][:k]  # itself is usually first, but not with duplicate points
        votes = np.bincount(y[others], minlength=int(y.max()) + 1)
        guess = next(y[j] for j in others if votes[y[j]] == votes.max())
        right += int(guess == y[i])
    return right / n, k


def embed(
    net: RunNetwork,
    images_uint8: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    method: str = "pca",
    train: tuple[np.ndarray, np.ndarray] | None = None,
    features: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Embedding:
    """The penultimate layer's features of ``images_uint8``, projected with ``method``, and how the classes separate.

    Args:
        net: the run's network (:func:`core.inside.open_run`).
        images_uint8: (N, H, W, C) test images at the run's size.
        labels: (N,) their true classes.
        probs: (N, classes) the network's probabilities for them (the stored ones).
        method: "pca" or "tsne".
        train: (images, labels) of training images to place in the same picture, or None. The projection is
            fitted on all the points shown; the separation number stays the test images'.
        features: the penultimate layer's output for the test images and for ``train``'s images, when the
            caller has them (:func:`features_from_cache`); None: computed by ``net``.
    """
    check_method(method)
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype="float32")
    n_test = len(labels)
    test_features, train_features = features or (net.features(images_uint8), None)
    features = test_features
    knn, k = knn_accuracy(features, labels)
    if train is not None and len(train[1]):
        train_features = net.features(train[0]) if train_features is None else train_features
        probs = np.concatenate([probs, net.probabilities_from_features(train_features)])
        labels = np.concatenate([labels, np.asarray(train[1], dtype=np.int64)])
        features = np.concatenate([features, train_features])
    coords, explained = project(features, method)
    knn_2d, _ = knn_accuracy(coords[:n_test], labels[:n_test])
    predicted = probs.argmax(axis=1).astype(np.int64)
    return Embedding(
        run_id=net.record.run_id,
        method=method,
        layer=net.feature_layer,
        units=int(features.shape[1]),
        coords=coords,
        labels=labels,
        predicted=predicted,
        confidence=probs.max(axis=1),
        class_names=list(net.class_names),
        k=k,
        knn_accuracy=knn,
        knn_accuracy_2d=knn_2d,
        model_accuracy=float((predicted[:n_test] == labels[:n_test]).mean()),
        explained=explained,
        n_test=n_test,
    )


def stored_test_arrays(store: RunStore, run_id: str) -> dict[str, np.ndarray]:
    """The run's stored test images, labels and probabilities; a :class:`UserError` when it has none."""
    arrays = store.load_arrays(run_id)
    if not all(name in arrays for name in ("test_images", "y_true", "probs")) or not len(arrays["y_true"]):
        raise UserError(
            f"Run {run_id} has no stored test images, so there is nothing to map. Train the configuration "
            "again (Train page, or `python -m core train --no-cache`)."
        )
    return arrays


def training_split(
    store: RunStore, record: RunRecord, test_index: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's training images (uint8), labels and places in the dataset: its dataset read again and split with
    the run's own settings.

    Raises:
        DataError: the dataset cannot be read any more (moved, deleted, another session's upload).
        UserError: its images changed since the run was trained, so the split would not be the run's.
    """
    model_cfg = ModelConfig.from_dict(record.model_config)
    train_cfg = TrainConfig.from_dict(record.train_config)
    cache_dir = None if store.readonly else store.cache_dir  # a read-only store is never written, not even its cache
    ds = load_dataset(record.source, image_size=model_cfg.input_size, channels=model_cfg.channels, cache_dir=cache_dir)
    data = run_split(ds, train_cfg)  # the split the run's training made
    same = ds.fingerprint == record.data.get("fingerprint", ds.fingerprint)
    if not same or (test_index is not None and not np.array_equal(data.test_index, test_index)):
        raise UserError(
            f"The images of run {record.run_id}'s dataset have changed since it was trained, so its training "
            "images cannot be found again. Map the test images only, or train the configuration again."
        )
    return np.asarray(ds.images[data.train_index]), np.asarray(data.y_train_int, dtype=np.int64), data.train_index


def features_from_cache(
    store: RunStore, record: RunRecord, net: RunNetwork, index: np.ndarray, train_index: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A VGG16 transfer run's penultimate features from the base features its training cached, else None.

    The head of such a run trained on the frozen base's pooled features of the whole dataset, kept in the
    store's cache under ``record.extra["features_key"]``: the head's hidden layer applied to them gives the
    features without running VGG16 again. Only when the base stayed frozen (no fine-tuning phase) and the
    cached array still covers the run's dataset; ``index``/``train_index`` are the test and training images'
    places in it. These are the features the run computed in its own precision (bfloat16 base where it
    trained so), the ones its stored predictions came from.
    """
    key = record.extra.get("features_key")
    if record.model_config.get("model") != "vgg16" or not key or index is None:
        return None
    if any(phase.get("name") != "head" for phase in record.phases):
        return None  # fine-tuning changed the base after the features were cached
    hit = store.cache_get(FEATURES_KIND, key)
    pooled = None if hit is None else hit.get("pooled")
    if pooled is None or pooled.shape != (record.data.get("n_images"), 512):
        return None
    test = net.features_from_pooled(pooled[np.asarray(index)])
    return test, None if train_index is None else net.features_from_pooled(pooled[np.asarray(train_index)])


def embed_run(
    store: RunStore, run_id: str, method: str = "pca", net: RunNetwork | None = None, with_train: bool = False
) -> Embedding:
    """:func:`embed` for a stored run's test images (``net``: the run's opened network if the caller has it).

    ``with_train``: also its training images (:func:`training_split`).

    Raises:
        UnknownRunError: no stored run has this id.
        ModelMissingError: the run has no network file.
        UserError: an unknown method, no stored test images, or training images that cannot be found again.
    """
    check_method(method)
    record = store.get(run_id)
    if record is None:
        raise UnknownRunError.of(run_id)
    arrays = stored_test_arrays(store, run_id)
    split = training_split(store, record, arrays.get("test_index")) if with_train else None
    net = net or open_run(store, run_id)
    features = features_from_cache(store, record, net, arrays.get("test_index"), None if split is None else split[2])
    train = None if split is None else split[:2]
    return embed(net, arrays["test_images"], arrays["y_true"], arrays["probs"], method, train, features)
