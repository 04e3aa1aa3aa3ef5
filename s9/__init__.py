"""s9: turn a concept's scene prompts and first frames into one video clip per scene."""

from typing import Any


def __getattr__(name: str) -> Any:
    # On first use, not at import: importlib.metadata costs ~40 ms, which every worker and renderer would pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("s9")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 's9' has no attribute {name!r}")
