"""The one exception type autoinit raises for bad input."""


class AutoInitError(ValueError):
    """Bad input to autoinit: the message is one line that names the problem and the fix."""
