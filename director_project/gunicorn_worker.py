"""The gunicorn worker of gunicorn.conf.py: gunicorn's gevent *pywsgi* worker, whose
connections get what ``manage.py serve``'s get (director.ops.wsgiserver.ConnectionLimits:
idle timeout, request-header deadline, TCP_NODELAY).

gevent's pywsgi parses HTTP faster than gunicorn's own gevent worker (2 workers: 9,300
redirects/s against 7,800 here), and leaves the director's ``Server`` header alone.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from director.ops.wsgiserver import ConnectionLimits


class DirectorPyWSGIHandler(ConnectionLimits, PyWSGIHandler):
    def handle(self) -> None:
        from django.conf import settings

        self.keepalive_timeout = settings.DIRECTOR_KEEPALIVE_TIMEOUT
        super().handle()


class DirectorWorker(GeventPyWSGIWorker):
    wsgi_handler = DirectorPyWSGIHandler
