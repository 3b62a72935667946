"""The package version, read by hatchling and by ``paca-otel --version``."""

__version__ = "0.1.0"
