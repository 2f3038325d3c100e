"""Errors a user can cause: the CLI turns them into one line and exit status 2."""


class UserError(ValueError):
    """Bad input from a user: a one-line message naming what is wrong and what is valid."""


class ConfigError(UserError):
    """A strategy or trainer configuration value is out of range or unknown."""


def choice_error(what: str, value, valid) -> UserError:
    """Build the standard 'unknown X; valid: ...' message."""
    return UserError(f"unknown {what} {value!r}; valid: {', '.join(sorted(map(str, valid)))}")
