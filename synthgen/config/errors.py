"""Errors that are the user's to fix: the CLI prints them as one line, never a traceback."""


class UserError(Exception):
    """Bad input (config, paths, unreachable endpoint): exit code 1 with this message."""
