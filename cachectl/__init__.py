"""cachectl: run an API-response cache that lives in Redis.

Importing this package loads no CLI code and no Redis client: the library's names are
loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
