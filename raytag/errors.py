"""Errors shared by the driver and the command line."""


class JobError(RuntimeError):
    """A job that cannot run as configured (e.g. a split with no usable audio)."""
