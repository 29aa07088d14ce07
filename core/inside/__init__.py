"""Inside the network: feature maps, a convolution worked by hand, learned filters, Grad-CAM, occlusion.

For any stored run, scratch CNN or VGG16 transfer::

    from core.store.runstore import RunStore
    from core.inside import open_run, work_convolution, grad_cam

    net = open_run(RunStore(), run_id)              # loads the stored model once
    image = RunStore().load_arrays(run_id)["test_images"][0]
    net.feature_maps(image, "block1_conv").shape    # == the layer table's output shape
    work_convolution(net, image, "block1_conv", row=5, col=7, channel=0).value
    grad_cam(net, image).heatmap                    # (H, W) in [0, 1], for the predicted class

The package, lowest module first (each imports only the ones above it):

- :mod:`core.inside.pictures`: colour scales, channel grids, overlays, PNGs (NumPy and Pillow).
- :mod:`core.inside.network`: :class:`RunNetwork` (a flat, read-only copy of the stored model
  returning every layer's output), :func:`open_run`, the errors for an unknown run, layer or class.
- :mod:`core.inside.worked` | :mod:`core.inside.gradcam` | :mod:`core.inside.filters`: a unit
  computed by hand; Grad-CAM and occlusion; the learned kernels.
- :mod:`core.inside.saliency` (above gradcam): SmoothGrad, Integrated Gradients (black baseline, with its
  completeness gap), an edge map as a control, and Adebayo et al.'s sanity check: the top layers
  randomised on a copy, each map's rank correlation to the original, which methods passed.
- :mod:`core.inside.maximise`: activation maximisation, an image grown by gradient ascent to excite one
  filter (or one class), compared with the test images, kept in the run's folder.
- :mod:`core.inside.embedding`: all test images in the penultimate layer's feature space, projected
  with PCA or t-SNE, and how well the classes separate there (k-nearest-neighbour accuracy).

TensorFlow is imported only when a network is opened.
"""

from core.inside.embedding import METHODS, Embedding, embed, embed_run
from core.inside.filters import Filters, filters
from core.inside.gradcam import GradCam, Occlusion, default_layer, grad_cam, occlusion
from core.inside.maximise import AscentSettings, Maximised, default_settings, maximise, maximise_run, stored_maximised
from core.inside.network import (
    LayerInfo,
    ModelMissingError,
    RunNetwork,
    UnknownClassError,
    UnknownLayerError,
    UnknownRunError,
    load_run_model,
    open_run,
    softmax,
)
from core.inside.saliency import (
    SALIENCY_METHODS,
    Completeness,
    Saliency,
    SanityCheck,
    SanityRow,
    edge_map,
    integrated_gradients,
    rank_correlation,
    saliency,
    sanity_check,
    smoothgrad,
    top_layers,
)
from core.inside.worked import BatchNormStep, PoolStep, WorkedConvolution, work_convolution

__all__ = [
    "AscentSettings",
    "Maximised",
    "default_settings",
    "maximise",
    "maximise_run",
    "stored_maximised",
    "METHODS",
    "SALIENCY_METHODS",
    "Completeness",
    "Saliency",
    "SanityCheck",
    "SanityRow",
    "edge_map",
    "integrated_gradients",
    "rank_correlation",
    "saliency",
    "sanity_check",
    "smoothgrad",
    "top_layers",
    "BatchNormStep",
    "Embedding",
    "Filters",
    "GradCam",
    "LayerInfo",
    "ModelMissingError",
    "Occlusion",
    "PoolStep",
    "RunNetwork",
    "UnknownClassError",
    "UnknownLayerError",
    "UnknownRunError",
    "WorkedConvolution",
    "default_layer",
    "embed",
    "embed_run",
    "filters",
    "grad_cam",
    "load_run_model",
    "occlusion",
    "open_run",
    "softmax",
    "work_convolution",
]
