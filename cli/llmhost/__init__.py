"""llmhost: take a bare Linux box with NVIDIA GPUs to a tuned, verified local-LLM host."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmhost")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+src"
