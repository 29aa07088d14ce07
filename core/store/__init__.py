"""The run store: SQLite plus one folder per run (atomic writes), under CNNLAB_HOME; and the students known by name."""

from core.store.runstore import RunRecord, RunStore, UnknownRunError, default_home
from core.store.students import (
    LOGIN_HOURS,
    Login,
    LoginRefused,
    NameRefused,
    Students,
    issue_token,
    login_secret,
    name_of,
    normalise_name,
    read_token,
    user_id_of,
)

__all__ = [
    "LOGIN_HOURS",
    "Login",
    "LoginRefused",
    "NameRefused",
    "RunRecord",
    "RunStore",
    "Students",
    "UnknownRunError",
    "default_home",
    "issue_token",
    "login_secret",
    "name_of",
    "normalise_name",
    "read_token",
    "user_id_of",
]
