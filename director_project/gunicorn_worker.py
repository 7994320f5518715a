"""The gunicorn worker of gunicorn.conf.py: gunicorn's gevent *pywsgi* worker, whose
connections get what ``manage.py serve``'s get (director.serving.wsgiserver.ConnectionLimits:
idle timeout, request-header deadline, TCP_NODELAY; under TLS, the handshake deadline).

gevent's pywsgi parses HTTP faster than gunicorn's own gevent worker (2 workers: 9,300
redirects/s against 7,800 here), and leaves the director's ``Server`` header alone.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from director.serving.tls import TLSHandshakeDeadline
from director.serving.wsgiserver import ConnectionLimits


class DirectorPyWSGIHandler(ConnectionLimits, PyWSGIHandler):
    def handle(self) -> None:
        from django.conf import settings

        self.keepalive_timeout = settings.DIRECTOR_KEEPALIVE_TIMEOUT
        super().handle()


class DirectorPyWSGIServer(TLSHandshakeDeadline, PyWSGIServer):
    """With gunicorn's ``certfile``/``keyfile``: each TLS handshake has a deadline."""


class DirectorWorker(GeventPyWSGIWorker):
    server_class = DirectorPyWSGIServer
    wsgi_handler = DirectorPyWSGIHandler
