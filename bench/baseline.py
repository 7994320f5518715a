"""The two throughput baselines, served under the director's own gevent server.

``python -m bench.baseline bare|django --port P`` serves either a bare WSGI app or a
minimal Django project (one view, no apps, no middleware), each answering a fixed 307.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

LOCATION = "http://127.0.0.1:9/bench/file"


def bare_app(environ: dict, start_response: object) -> list[bytes]:
    start_response(  # type: ignore[operator]
        "307 Temporary Redirect", [("Location", LOCATION), ("Content-Length", "0")]
    )
    return [b""]


def django_app() -> object:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def fixed_redirect(request: object) -> object:
    from django.http import HttpResponse

    response = HttpResponse(status=307)
    response["Location"] = LOCATION
    response["Content-Length"] = "0"
    return response


def _urlpatterns() -> list[object]:
    from django.urls import re_path

    return [re_path(r"^.*$", fixed_redirect)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["bare", "django"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from director.serving.wsgiserver import make_server

    application = bare_app if args.app == "bare" else django_app()
    if args.app == "django":
        globals()["urlpatterns"] = _urlpatterns()
        sys.modules[__name__].urlpatterns = globals()["urlpatterns"]  # type: ignore[attr-defined]
    server = make_server(
        "127.0.0.1", args.port, application, connections=1100, keepalive_timeout=5.0
    )
    server.start()
    print(f"serving on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
