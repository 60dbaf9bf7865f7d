"""Gunicorn settings for Ownstory's web processes: `gunicorn -c gunicorn.conf.py wsgi:app`.

Workers run apart from web processes (`flask --app wsgi worker`); OWNSTORY_INLINE_WORKER must stay 0 here.
"""
import gc
import os

bind = os.environ.get("OWNSTORY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("OWNSTORY_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app is built once in the master and forked: smaller workers, and a broken config stops start-up once.
preload_app = True
accesslog = None  # Ownstory writes its own access lines, without query strings (status links carry secrets)
errorlog = "-"


def on_starting(server):
    if os.environ.get("OWNSTORY_INLINE_WORKER", "0") not in ("0", "", "false"):
        raise SystemExit("ownstory: OWNSTORY_INLINE_WORKER must be 0 under gunicorn; run `flask worker` processes")


def pre_fork(server, worker):
    """The app's objects, made once in this process (preload_app), are frozen before each fork: the cyclic
    garbage collector of a web process then never walks them. Unfrozen, they were most of what each full
    collection walked, a tenth of a second each, and about a fifth of a web process's CPU answering consent
    checks (measured with gc.callbacks). The recipe of the gc module's documentation for a server that forks
    without exec; it also keeps their memory pages shared with the workers."""
    gc.freeze()


def post_fork(server, worker):
    """Connections made in the master must not be shared with forked workers: each opens its own."""
    from wsgi import app

    app.extensions["ownstory_db"]["engine"].dispose(close=False)
    app.extensions["datamap"].dispose(close=False)
