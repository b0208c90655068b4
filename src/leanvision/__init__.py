"""leanvision: vision models from data to a fast, measured CPU/edge deployment.

Importing the package has no side effects and never imports torch: the training world
(`leanvision.data`, `models`, `training`, `compression`, `export`) is imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
