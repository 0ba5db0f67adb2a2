"""The error hierarchy and the process exit codes.

Every error a user can cause is a `GproxyError` whose message is one line that names the
offending value; `cli` prints it as `error: <message>` and exits with its `exit_code`.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RUNTIME = 1  # port in use, workers that cannot start, a bus that cannot bind
    USAGE = 2  # bad command line or configuration (click's own usage code, too)
    WORKER_BOOT = 3  # a worker could not start at all: the supervisor halts instead of looping


class GproxyError(Exception):
    """A failure with a one-line, user-facing message."""

    exit_code: ExitCode = ExitCode.RUNTIME


class ConfigError(GproxyError):
    """Bad input: a flag, a LISTEN-TARGET, a duration."""

    exit_code = ExitCode.USAGE


class AddressInUseError(GproxyError):
    """A listen address is already held by some process."""


class FatalError(GproxyError):
    """The supervisor must stop: a route's workers could not start at all, or a supervisor
    root that nothing can take over (the bus, a worker keeper, the watchdog) failed."""


class BusProtocolError(GproxyError):
    """A bus message with an unknown schema version: the two ends disagree, fail loudly."""
