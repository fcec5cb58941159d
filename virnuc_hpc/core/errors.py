"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input or configuration; the message names the fix."""

    exit_code = 2


class InputError(UserError):
    """Bad input file: the message names the file, the line or record, and the fix."""

    def __init__(self, path, where: str, problem: str, fix: str):
        self.path, self.where, self.problem, self.fix = str(path), where, problem, fix
        location = f"{self.path}: {where}: " if where else f"{self.path}: "
        super().__init__(f"{location}{problem}; fix: {fix}")


class ConfigError(UserError):
    """Invalid configuration value; the message lists the valid choices."""


class IntegrityError(UserError):
    """A file on disk does not match its checksum or declared shape."""
