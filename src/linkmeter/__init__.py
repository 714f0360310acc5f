"""linkmeter: gathers numbers about URLs from many providers, in dependent rounds."""

__version__ = "0.1.0"
