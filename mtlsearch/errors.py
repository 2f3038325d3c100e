"""Errors a user can cause: the CLI turns them into one line and exit status 2."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class UserError(ValueError):
    """Bad input from a user: a one-line message naming what is wrong and what is valid.

    `arguments` are the caller's parameters the message names in backticks (`out`): a Python caller reads the
    parameter, the command line words each as its flag (`worded`), so the library never names a flag itself.
    """

    def __init__(self, message: str, arguments: tuple[str, ...] = ()):
        super().__init__(message)
        self.arguments = tuple(arguments)

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with each named argument `x` written as `name(x)`."""
        text = str(self)
        for argument in self.arguments:
            text = text.replace(f"`{argument}`", name(argument))
        return text


class UserCodeError(UserError):
    """The user's own code (a dataset's function, class or items) raised: one line names what failed, and the
    original exception stays chained as `__cause__` so the command line can show its traceback on request."""


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's code: an exception it raises becomes a UserCodeError saying `what` raised which error."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:  # anything the user's code raises is the user's to fix
        detail = str(err).strip().splitlines()
        raise UserCodeError(f"{what} raised {type(err).__name__}" + (f": {detail[0]}" if detail else "")) from err


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: usually a learning rate too high for the problem."""


class ConfigError(UserError):
    """A strategy or trainer configuration value is out of range or unknown."""


def choice_error(what: str, value, valid) -> UserError:
    """Build the standard 'unknown X; valid: ...' message."""
    return UserError(f"unknown {what} {value!r}; valid: {', '.join(sorted(map(str, valid)))}")
