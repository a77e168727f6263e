"""One frozen, typed settings object built from ``KUWA_*`` environment variables.

Every field is documented in ``docs/configuration.md`` (a test keeps the two in step).
Command-line options override the environment; unknown ``KUWA_*`` names are rejected so a
typo never silently falls back to a default.

The object is :class:`~kuwa.settings.core.Settings`, its fields come in groups of related
settings (:mod:`.deployment`, :mod:`.signin`, :mod:`.documents`, :mod:`.jobs`,
:mod:`.executor`, :mod:`.commands`), and a ``KUWA_*`` string becomes a field's value in
:mod:`.values`. Other modules import the names below from ``kuwa.settings``.
"""

from kuwa.settings.core import PREFIX, Settings, setting_docs, setting_names
from kuwa.settings.deployment import DEFAULT_REDIS_URL
from kuwa.settings.values import SettingsError

__all__ = [
    "DEFAULT_REDIS_URL",
    "PREFIX",
    "Settings",
    "SettingsError",
    "setting_docs",
    "setting_names",
]
