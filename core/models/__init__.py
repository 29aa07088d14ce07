"""Models: the layer table (counts without TensorFlow), the Keras builders, VGG16 and its weight sources
and files, augmentation, and the input pipeline (with the models' input preprocessing).
"""

from core.models.augment import (
    CONTROLS,
    augment_dataset_fn,
    build_augmentation,
    course_code,
    describe,
    keras_code,
    layer_calls,
    preview,
)
from core.models.builder import build_model, keras_summary_rows
from core.models.layer_table import (
    VGG16_BLOCKS,
    ArchitectureError,
    LayerRow,
    check_architecture,
    check_cost,
    require_buildable,
    vgg16_base_rows,
)
from core.models.pipeline import Preprocess, image_batches, is_images, model_input, scale_batch
from core.models.vgg16 import FINE_TUNE_LAYERS, BaseInfo, assemble_model, build_base, unfreeze_last_block
from core.models.weight_sources import (
    CONV_LAYERS,
    IMAGENET_FILE,
    WeightsError,
    file_digest,
    preprocess_images,
    weight_kind,
    weights_status,
)

__all__ = [
    "ArchitectureError",
    "BaseInfo",
    "CONTROLS",
    "CONV_LAYERS",
    "FINE_TUNE_LAYERS",
    "IMAGENET_FILE",
    "LayerRow",
    "Preprocess",
    "VGG16_BLOCKS",
    "WeightsError",
    "assemble_model",
    "augment_dataset_fn",
    "build_augmentation",
    "build_base",
    "build_model",
    "check_architecture",
    "check_cost",
    "course_code",
    "describe",
    "file_digest",
    "image_batches",
    "is_images",
    "keras_code",
    "keras_summary_rows",
    "layer_calls",
    "model_input",
    "preprocess_images",
    "preview",
    "require_buildable",
    "scale_batch",
    "unfreeze_last_block",
    "vgg16_base_rows",
    "weight_kind",
    "weights_status",
]
