"""slabscope: watch Linux memory cgroups that refuse to die."""

__version__ = "0.1.0"
