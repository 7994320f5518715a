"""gunicorn configuration for production: ``gunicorn -c gunicorn.conf.py``.

gevent is patched here, first, so that ``--preload`` (which imports Django in the master)
is safe too. Each worker starts its background work (registry watcher, loop monitor)
after it forks.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

wsgi_app = "director_project.wsgi:application"
worker_class = "gevent"
bind = os.environ.get("DIRECTOR_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DIRECTOR_WORKERS", "2"))
# Connection greenlets per worker: max in-flight requests (1000 by default) plus the
# reserve that still answers 429, health and metrics when all request slots are taken.
worker_connections = int(os.environ.get("DIRECTOR_WORKER_CONNECTIONS", "1100"))
keepalive = int(float(os.environ.get("DIRECTOR_KEEPALIVE_TIMEOUT", "5")))
# For async workers this is a heartbeat: a worker whose loop is blocked this long is killed.
timeout = 30
graceful_timeout = 10
control_socket_disable = True
accesslog = None


def _server_header_is_pelican() -> None:
    """gunicorn drops the application's ``Server`` header and writes its own. Pelican
    clients read it to tell a director from a proxy, so gunicorn's must be ours."""
    from gunicorn.http import wsgi

    from director.responses import SERVER_HEADER

    wsgi.SERVER = SERVER_HEADER


_server_header_is_pelican()


def post_worker_init(worker: object) -> None:
    from director import runtime

    runtime.start_background()
