"""Fixtures for the store tests: a MariaDB server and a redis-server for the whole run, shared by every module that
needs one."""
from tests.erasure.stores.helpers_mariadb import mariadb  # noqa: F401 (a fixture: pytest finds it here)
from tests.erasure.stores.helpers_redis import r, redis_server  # noqa: F401 (fixtures, as above)
