"""Exceptions raised by maskipy; user mistakes are MaskipyError subclasses, printed without traceback
(``cli_runner.report_error``)."""


class MaskipyError(Exception):
    """Base class for every error maskipy reports to the user."""


class ConfigError(MaskipyError, ValueError):
    """A configuration file or command-line override is invalid."""


class CameraError(MaskipyError, OSError):
    """A frame source could not be opened or stopped delivering frames."""


class ModelError(MaskipyError, ValueError):
    """A model bundle is missing, corrupt, or does not match its metadata or the config."""


class ImageError(MaskipyError, ValueError):
    """An image file could not be read or decoded."""


class OutputError(MaskipyError, RuntimeError):
    """An output device (GPIO pin, log file) could not be set up."""


class StateLockError(OutputError):
    """The state directory is in use by another gate, or its lock file cannot be created."""


class DeployError(MaskipyError, RuntimeError):
    """Copying, validating or swapping a bundle on a remote host failed."""
