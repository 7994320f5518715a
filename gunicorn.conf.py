"""gunicorn configuration for production: ``gunicorn -c gunicorn.conf.py``.

gevent is patched here, first, so that ``--preload`` (which imports Django in the master)
is safe too. Each worker starts its background work (registry watcher, loop monitor,
health tests) after it forks. The director's own ``Server: pelican/<version>`` header is
the only one: pywsgi adds none.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

# Plain Python, no Django: this file is read before Django's settings are.
from director.serving.shedding import DEFAULT_CONNECTIONS  # noqa: E402

wsgi_app = "director_project.wsgi:application"
# gevent, through pywsgi, with serve's connection handling (director_project/gunicorn_worker.py).
worker_class = "director_project.gunicorn_worker.DirectorWorker"
bind = os.environ.get("DIRECTOR_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DIRECTOR_WORKERS", "2"))
# Connection greenlets per worker: max_inflight_requests' default plus the
# reserve that still answers 429, health and metrics when all request slots are taken.
worker_connections = int(os.environ.get("DIRECTOR_WORKER_CONNECTIONS", DEFAULT_CONNECTIONS))
# For async workers this is a heartbeat: a worker whose loop is blocked this long is killed.
timeout = 30
graceful_timeout = 10
control_socket_disable = True
# No access log unless asked (--access-logfile). Its lines never hold a token of the query
# (authz, access_token: director.serving.logsafe, through the worker's handler); the
# default format logs no request header: do not add %({authorization}i)s.
accesslog = None


def post_worker_init(worker: object) -> None:
    from director.ops import runtime

    # Where others reach this director when DIRECTOR_EXTERNAL_URL does not say: the first
    # address bound (the command line's --bind, or DIRECTOR_BIND).
    addresses = getattr(getattr(worker, "cfg", None), "bind", None) or [bind]
    first = str(addresses[0])
    cfg = getattr(worker, "cfg", None)
    scheme = "https" if getattr(cfg, "is_ssl", False) else "http"  # certfile and keyfile set
    runtime.start_background("" if first.startswith("unix:") else f"{scheme}://{first}")
