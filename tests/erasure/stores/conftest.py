"""Fixtures for the store tests: a MariaDB server for the whole run, shared by every module that needs one."""
from tests.erasure.stores.helpers_mariadb import mariadb  # noqa: F401 (a fixture: pytest finds it here)
