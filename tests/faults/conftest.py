"""The fault suite's fixtures: the cache scenarios' workers over an origin (tests/e2e/conftest.py), shared."""

from tests.e2e.conftest import start_worker

__all__ = ["start_worker"]
