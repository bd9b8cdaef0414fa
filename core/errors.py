"""The one error type a command line turns into `error: ...` and exit 2."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager


class UsageError(ValueError):
    """Bad input from the user: an argument out of range, missing data,
    a corrupt checkpoint. The message names the argument."""


@contextmanager
def exit_on_usage_error(prog: str):
    """Turn ValueError/UsageError/FileNotFoundError into one line and exit 2."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad input as one line `prog: error: ...`, exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)
