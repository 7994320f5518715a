"""``python manage.py serve``: the director on gevent's WSGI server, over HTTP, HTTPS or
both side by side."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import gevent
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from director import registry
from director.ops import runtime
from director.serving.tls import tls_context
from director.serving.wsgiserver import Listener, make_servers

DEMO_TLS_FOLDER = "demo-tls"  # git-ignored, beside demo-data/
NO_EXTERNAL_URL_WARNING = (
    "warning: DIRECTOR_EXTERNAL_URL is not set: advertise tokens are checked against the "
    "Host each request names, and getFedToken mints no tokens (503) unless "
    "DIRECTOR_FEDERATION_DISCOVERY_URL names the federation's issuer; set it to this "
    "director's public URL"
)


class Command(BaseCommand):
    help = (
        "Serve the director with gevent (monkey-patched in manage.py) on HOST:PORT: plain "
        "HTTP, or HTTPS with --tls-cert/--tls-key; with --tls-port, HTTP on --port and "
        "HTTPS on --tls-port."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (8000).")
        parser.add_argument(
            "--tls-cert", metavar="FILE", help="PEM certificate (chain) to serve HTTPS with."
        )
        parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert.")
        parser.add_argument(
            "--tls-port",
            type=int,
            metavar="PORT",
            help="Serve HTTPS on this port and plain HTTP on --port (without it, the TLS "
            "options make --port serve HTTPS alone).",
        )
        parser.add_argument(
            "--demo-tls",
            nargs="?",
            const=DEMO_TLS_FOLDER,
            metavar="FOLDER",
            help=f"TLS with a local CA and certificate generated once into FOLDER "
            f"({DEMO_TLS_FOLDER}/ of the project by default) instead of --tls-cert/--tls-key; "
            "clients trust its ca.pem.",
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Also start the local demo federation (two origins, two caches).",
        )
        parser.add_argument("--access-log", action="store_true", help="Log every request.")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.wsgi import get_wsgi_application

        host, port, tls_port = options["host"], options["port"], options["tls_port"]
        for value in (port, tls_port):
            if value is not None and not 0 <= value <= 65535:
                raise CommandError(f"{value} is not a TCP port")
        tls, ca_file = self._tls(options)
        if tls_port is not None and tls is None:
            raise CommandError("--tls-port needs --tls-cert and --tls-key (or --demo-tls)")
        if tls is None:
            listeners = [Listener(host, port)]
        elif tls_port is None:
            listeners = [Listener(host, port, tls)]
        else:
            listeners = [Listener(host, port), Listener(host, tls_port, tls)]
        application = get_wsgi_application()
        snapshot = registry.current()
        # Connection greenlets (shared by every listener): the request limit plus a
        # reserve that still answers 429, /metrics and health when every slot is taken.
        connections = snapshot.settings.max_inflight_requests + settings.DIRECTOR_CONNECTION_RESERVE
        servers = make_servers(
            listeners,
            application,
            connections=connections,
            keepalive_timeout=settings.DIRECTOR_KEEPALIVE_TIMEOUT,
            access_log=options["access_log"],
            overflow=settings.DIRECTOR_OVERFLOW_CONNECTIONS,
        )
        for server, listener in zip(servers, listeners, strict=True):
            try:
                server.start()
            except OSError as error:
                for started in servers:
                    started.close()
                raise CommandError(
                    f"Cannot listen on {listener.host}:{listener.port}: {error}"
                ) from None
        bracketed = host if ":" not in host else f"[{host}]"
        urls = [
            f"{'https' if server.ssl_enabled else 'http'}://{bracketed}:{server.server_port}"
            for server in servers
        ]
        if options["demo"]:
            self._name_the_demo(urls)
        elif not settings.DIRECTOR_EXTERNAL_URL:
            self.stderr.write(NO_EXTERNAL_URL_WARNING)
        # Others reach this director by its HTTPS URL when it has one.
        runtime.start_background(urls[-1])
        also = f"; {urls[1]}" if len(urls) > 1 else ""
        self.stdout.write(
            f"director serving on {urls[0]} (gevent, {connections} connections{also})"
        )
        if ca_file is not None:
            self.stdout.write(f"local CA (trust it to reach {urls[-1]}): {ca_file}")
        demo = None
        if options["demo"]:
            demo = self._start_demo(urls, ca_file)
        self.stdout.flush()
        stopped = gevent.event.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, stopped.set)
        stopped.wait()
        self.stdout.write("stopping")
        if demo is not None:
            demo.stop()
        for server in servers:
            server.stop(timeout=2)
        runtime.stop_background()

    def _tls(self, options: dict[str, Any]) -> tuple[Any, Path | None]:
        """The TLS context to serve with (None: plain HTTP) and the demo CA file, if any."""
        cert, key = options["tls_cert"], options["tls_key"]
        if options["demo_tls"]:
            if cert or key:
                raise CommandError("--demo-tls replaces --tls-cert and --tls-key")
            from director.demo.tls import ensure_certificates

            folder = Path(settings.BASE_DIR) / options["demo_tls"]  # an absolute one wins
            made = ensure_certificates(folder, (options["host"],))
            cert, key, ca_file = str(made.cert), str(made.key), made.ca
        elif bool(cert) != bool(key):
            raise CommandError("--tls-cert and --tls-key go together")
        else:
            ca_file = None
        if not cert:
            return None, None
        try:
            return tls_context(cert, key), ca_file
        except OSError as error:  # ssl.SSLError too: unreadable, not PEM, key not the cert's
            raise CommandError(f"Cannot use --tls-cert {cert} --tls-key {key}: {error}") from None

    def _name_the_demo(self, urls: list[str]) -> None:
        """The demo names this director by the URLs it serves: the issuer of its tokens is
        the last (HTTPS when served) unless DIRECTOR_EXTERNAL_URL says otherwise, and the
        demo's servers' advertise tokens name the first (plain HTTP)."""
        if not settings.DIRECTOR_EXTERNAL_URL:
            settings.DIRECTOR_EXTERNAL_URL = urls[-1]
        settings.DIRECTOR_ADVERTISE_AUDIENCES = [*settings.DIRECTOR_ADVERTISE_AUDIENCES, *urls]

    def _start_demo(self, urls: list[str], ca_file: Path | None) -> Any:
        from director.demo.federation import DemoFederation

        # The demo's own servers talk to the director over plain HTTP when it is served.
        demo = DemoFederation(urls[0], Path(settings.BASE_DIR) / "demo-data", ca_file).start()
        url, secure = urls[0], urls[-1]
        lines = [
            "demo federation: " + ", ".join(f"{m.name} {m.server.url}" for m in demo.members),
            "Try:",
            f"  curl -L {url}/demo/hello.txt",
            f"  curl -sI {url}/demo/data/numbers.csv",
        ]
        if secure.startswith("https://"):
            trust = f"SSL_CERT_FILE={ca_file} " if ca_file is not None else ""
            federation = f"pelican://{secure.split('://', 1)[1]}"
            lines.append(
                f"  {trust}.venv-pelicanfs/bin/python -c "
                '"from pelicanfs.core import PelicanFileSystem; '
                f"print(PelicanFileSystem('{federation}').cat('/demo/hello.txt'))\""
            )
        lines.append(
            f"Admin: python manage.py createsuperuser, then {url}/admin/ ; API docs: {url}/api/docs"
        )
        self.stdout.write("\n".join(lines))
        return demo
