"""The template's proofs use the project's own fixtures (tests/conftest.py): real services, one of each
per test session."""

from tests.conftest import airflow, postgres, warehouse, warehouse_uri  # noqa: F401 - fixtures
