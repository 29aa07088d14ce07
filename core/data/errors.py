"""The one error of :mod:`core.data`: a dataset (or an image, or a setting) that cannot be used."""

from __future__ import annotations

from core.base.errors import UserError


class DataError(UserError):
    """A dataset cannot be used: the message says what was found and what is needed.

    A :class:`core.base.errors.UserError` (so also a ``ValueError``): the CLI, the
    dashboard and the worker show the message as it is.
    """
