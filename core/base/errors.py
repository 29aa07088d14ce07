"""The one base class of every error a user can fix.

Everything the engine raises because of what a person asked for (a bad
setting, a dataset that cannot be used, an impossible architecture, weights
that are not there) derives from :class:`UserError`. Callers rely on it:
the CLI exits 2 with the message alone, the dashboard shows it as a
sentence, the worker marks the job failed with it. Anything else is a bug
and is reported as one.

It is a ``ValueError`` so code written against the older, plainer errors
keeps working.

:func:`plain_message` is an exception's text without terminal escape codes
(Keras wraps its messages in bold), for wrapping a library's error in ours.
"""

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colour/style codes


class UserError(ValueError):
    """Something the user asked for cannot be done; the message says why and how to fix it."""


def plain_message(exc: BaseException) -> str:
    """``str(exc)`` without terminal colour/style escape codes: it is shown to a student or stored in a record."""
    return _ANSI.sub("", str(exc))
