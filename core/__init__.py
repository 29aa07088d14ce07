"""CNN Lab's engine: data, models, training, diagnostics, the run store and the CLI.

Importing ``core`` is cheap: TensorFlow is only imported by the modules that
build or train models (``core.model``, ``core.train``, ``core.transfer``,
``core.augment``), and only when they are used.
"""

__version__ = "0.1.0"
