"""s9: turn a concept's scene prompts and first frames into one video clip per scene."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("s9")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
