"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class MnistReproError(Exception):
    """A problem the user can fix: bad input, bad params, an unreachable source.

    The message is a single line that names the file (or parameter) and the problem.
    """
