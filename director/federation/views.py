"""The federation issuer's documents (reference pelican-trust 3.2):
``/.well-known/openid-configuration`` and ``/.well-known/issuer.jwks``."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from director.federation import issuer
from director.locate import external_url


def _document(body: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f"attachment; filename={filename}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def openid_configuration(request: HttpRequest) -> HttpResponse:
    """``{"issuer": <the iss of the tokens minted here>, "jwks_uri": <their key set>}``:
    the names discovery gives (``discovery_endpoint``, ``jwks_uri``), as a plain Pelican
    director serves it, and the federation's when its discovery lives elsewhere."""
    base = external_url(request)
    body = json.dumps(
        {"issuer": issuer.federation_issuer(base), "jwks_uri": issuer.jwks_url(base)}, indent=2
    )
    return _document(body, "pelican-oidc-configuration.json")


def issuer_jwks(request: HttpRequest) -> HttpResponse:
    """The public part of every published signing key, pretty-printed with a newline."""
    return _document(json.dumps(issuer.jwks(), indent=2) + "\n", "public-signing-key.jwks")
