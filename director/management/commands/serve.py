"""``python manage.py serve``: the director on gevent's WSGI server."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import gevent
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from director import registry
from director.ops import runtime
from director.ops.wsgiserver import make_server


class Command(BaseCommand):
    help = "Serve the director with gevent (monkey-patched in manage.py) on HOST:PORT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (8000).")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Also start the local demo federation (two origins, two caches).",
        )
        parser.add_argument("--access-log", action="store_true", help="Log every request.")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.wsgi import get_wsgi_application

        host, port = options["host"], options["port"]
        if not 0 <= port <= 65535:
            raise CommandError(f"--port {port} is not a TCP port")
        application = get_wsgi_application()
        snapshot = registry.current()
        # Connection greenlets: the request limit plus a reserve that still answers 429,
        # /metrics and health when every request slot is taken.
        connections = snapshot.settings.max_inflight_requests + settings.DIRECTOR_CONNECTION_RESERVE
        try:
            server = make_server(
                host,
                port,
                application,
                connections=connections,
                keepalive_timeout=settings.DIRECTOR_KEEPALIVE_TIMEOUT,
                access_log=options["access_log"],
                overflow=settings.DIRECTOR_OVERFLOW_CONNECTIONS,
            )
            server.start()
        except OSError as error:
            raise CommandError(f"Cannot listen on {host}:{port}: {error}") from None
        url = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
        runtime.start_background(url)
        self.stdout.write(f"director serving on {url} (gevent, {connections} connections)")
        demo = None
        if options["demo"]:
            from director.demo.federation import DemoFederation

            demo = DemoFederation(url, Path(settings.BASE_DIR) / "demo-data").start()
            self.stdout.write(
                "demo federation: "
                + ", ".join(f"{m.name} {m.server.url}" for m in demo.members)
                + "\nTry:\n"
                f"  curl -L {url}/demo/hello.txt\n"
                f"  curl -sI {url}/demo/data/numbers.csv\n"
                "Admin: python manage.py createsuperuser, then "
                f"{url}/admin/ ; API docs: {url}/api/docs"
            )
        self.stdout.flush()
        stopped = gevent.event.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, stopped.set)
        stopped.wait()
        self.stdout.write("stopping")
        if demo is not None:
            demo.stop()
        server.stop(timeout=2)
        runtime.stop_background()
