"""Shared test setup: a private run store and quiet TensorFlow for every test session."""

import os
import tempfile

# Before anything imports TensorFlow or the store.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_HOME = tempfile.mkdtemp(prefix="cnnlab-tests-")
os.environ["CNNLAB_HOME"] = _HOME
