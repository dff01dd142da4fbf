"""The release of softprompt (setup.cfg reads it; runs record it)."""

__version__ = "0.3.0"
