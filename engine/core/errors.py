"""Errors a user can act on.

Every error the engine raises on purpose derives from :class:`AtelierError`. Its message is one
line that says what went wrong and what to do, so the CLI prints it as is and the studio shows it
in the page.
"""


class AtelierError(Exception):
    """Base class for errors whose message is meant for the user."""


class InputError(AtelierError):
    """A file, argument or setting given by the user cannot be used."""


class ConfigError(AtelierError):
    """A configuration value is out of range or inconsistent."""
