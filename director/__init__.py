"""The director: a Pelican-compatible redirect service for data federations."""

__version__ = "0.1.0"
