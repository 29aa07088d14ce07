"""The run store: SQLite plus one folder per run (atomic writes), under CNNLAB_HOME."""

from core.store.runstore import RunRecord, RunStore, UnknownRunError, default_home

__all__ = ["RunRecord", "RunStore", "UnknownRunError", "default_home"]
