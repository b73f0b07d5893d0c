"""ClarityCore: reproducible super-resolution training."""

__version__ = "0.1.0"
