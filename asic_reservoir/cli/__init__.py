"""Every ``asic-reservoir ...`` command; the libraries below have none."""


class CommandError(Exception):
    """A command's failure as its user should read it. ``asic-reservoir`` prints
    ``asic-reservoir COMMAND: message`` on stderr and exits with ``status`` (2: the command
    was asked something it cannot do, 1: the work itself failed), so each command only
    says what went wrong."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
