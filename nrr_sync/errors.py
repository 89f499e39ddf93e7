"""Errors a user can act on, each carrying the documented exit code."""


class NrrSyncError(Exception):
    """An expected failure: its message is shown to the user as is, no traceback."""

    exit_code = 1


class ConfigError(NrrSyncError):
    """Bad usage, a bad or missing config file, bad input (exit 2)."""

    exit_code = 2


class StripeAuthError(NrrSyncError):
    """Stripe rejected the key or a permission it lacks (exit 3)."""

    exit_code = 3


class StripeUnavailableError(NrrSyncError):
    """Stripe unreachable or failing after all retries (exit 4)."""

    exit_code = 4


class MalformedAnswer(StripeUnavailableError):
    """Stripe answered something that cannot be trusted, after all retries (exit 4):
    nothing of it is landed or published."""


class DatabaseBusyError(NrrSyncError):
    """The database is in use by another process past the timeout (exit 5)."""

    exit_code = 5


class BuildError(NrrSyncError):
    """A SQL model failed; the previous report tables are untouched (exit 6)."""

    exit_code = 6
