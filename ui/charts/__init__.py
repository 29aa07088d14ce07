"""Plotly figures in one house style: the same colours mean the same thing on every page.

Pages draw with ``from ui import charts; st.plotly_chart(charts.history_figure(...), config=charts.CONFIG)``.
Every function takes numbers core already computed and only decides how to draw them. The figures live
in one module per family:

- :mod:`ui.charts.common`        the palette (blue training, orange validation, green best epoch, purple
                                 restored, red stopped...), the layout and axis style, ``CONFIG``, :func:`spec`
- :mod:`ui.charts.curves`        one run's training curves (:func:`history_figure`), a learning-rate range
                                  test's loss against the rate (:func:`lr_find_figure`)
- :mod:`ui.charts.compare`       several runs on one chart: the lab's variants, scratch vs transfer, runs
                                 overlaid, repeats' mean and band
- :mod:`ui.charts.sweeps`        a sweep's grid of results and its small multiples
- :mod:`ui.charts.data`          images per class in each split
- :mod:`ui.charts.architecture`  the feature map's shape, stage by stage
- :mod:`ui.charts.predictions`   the clickable confusion matrix, one image's class probabilities, the
                                 reliability diagram (calibration)
- :mod:`ui.charts.inside`        feature maps, a convolution worked by hand, filters, Grad-CAM and occlusion, the
                                 saliency maps on one row (and again after the sanity check's randomisation);
                                 the test images in the penultimate layer's feature space

Speed matters here: the Train, lab and transfer pages redraw their curves for every watching browser
once a second, and the Architecture page redraws on every slider move. Plotly's object API
(``make_subplots``, ``add_vline``, ``update_layout``) spends 100-300 ms validating each call, so each
figure is assembled as one plain spec and turned into a ``go.Figure`` once (~10-30 ms). The figure
functions are also cached with ``st.cache_resource`` (``common.CACHE``): a figure is built once per
distinct input (per epoch for a live run) and shared, read-only, by every session; ``st.plotly_chart``
only serialises it.

This module only re-exports; it holds no logic.
"""

from ui.charts.architecture import feature_map_figure
from ui.charts.common import (
    BEST,
    CONFIG,
    GRID,
    KIND_COLORS,
    MUTED,
    RESTORED,
    SERIES_COLORS,
    SPLIT_COLORS,
    SPLIT_NAMES,
    STOPPED,
    TEST,
    TRAIN,
    VAL,
    VARIANT_COLORS,
    spec,
)
from ui.charts.compare import band_figure, comparison_figure, lab_figure, overlay_figure
from ui.charts.curves import history_figure, lr_find_figure
from ui.charts.data import class_counts_figure
from ui.charts.inside import (
    embedding_figure,
    feature_maps_figure,
    filters_figure,
    heat_overlay_figure,
    kernel_slices_figure,
    maps_row_figure,
    matrix_figure,
    unit_figure,
)
from ui.charts.predictions import confusion_figure, probabilities_figure, reliability_figure
from ui.charts.sweeps import small_multiples_figure, sweep_figure

__all__ = [
    "BEST",
    "CONFIG",
    "GRID",
    "KIND_COLORS",
    "MUTED",
    "RESTORED",
    "SERIES_COLORS",
    "SPLIT_COLORS",
    "SPLIT_NAMES",
    "STOPPED",
    "TEST",
    "TRAIN",
    "VAL",
    "VARIANT_COLORS",
    "band_figure",
    "class_counts_figure",
    "comparison_figure",
    "confusion_figure",
    "embedding_figure",
    "feature_map_figure",
    "feature_maps_figure",
    "filters_figure",
    "heat_overlay_figure",
    "history_figure",
    "lr_find_figure",
    "kernel_slices_figure",
    "lab_figure",
    "maps_row_figure",
    "matrix_figure",
    "overlay_figure",
    "probabilities_figure",
    "small_multiples_figure",
    "spec",
    "sweep_figure",
    "unit_figure",
    "reliability_figure",
]
