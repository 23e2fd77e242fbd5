"""Exception types a user can meet.

``UserError`` and its children carry messages that name the setting or input at fault, the
valid values and what to do. ``assert`` is kept for internal invariants only.
"""


class UserError(Exception):
    """A problem the user can fix: bad setting, bad input, missing file."""


class ConfigError(UserError):
    """``params.yaml`` (or an override) holds an unknown key or an invalid value."""


class MissingWeightsError(UserError):
    """A model file named in the weight registry is absent or fails its hash check."""


class KeyMaterialError(UserError):
    """Key material is missing, malformed, too short or not allowed for this use.

    Messages never contain the key itself, only its source (file path or variable name)
    and, where it could be derived, its public fingerprint.
    """


class OutputExistsError(UserError):
    """An output location already holds finished work and neither resume nor force was asked."""


class InputError(UserError):
    """An input file or folder cannot be used (reported per file where possible)."""
