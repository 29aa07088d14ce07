"""CNN Lab's engine: data, models, training, diagnostics, the run store and the CLI.

The modules form a stack (docs/ARCHITECTURE.md; import-linter checks it).
Importing any of them is cheap: TensorFlow, Keras and h5py are imported only
inside the functions that build, train or read weights (``core.models.builder``,
``core.models.vgg16``, ``core.models.augment``, ``core.training.fit``, ``core.training.base_features``,
``core.models.weight_files``), when they are called.
"""

__version__ = "0.2.0"
