"""JSON documents in Pelican's shapes that are not ads: federation discovery."""

from __future__ import annotations


def discovery_document(base: str) -> dict[str, str]:
    """``/.well-known/pelican-configuration`` (reference 1.12): this director is the
    discovery, director, registration and broker endpoint of its federation."""
    return {
        "discovery_endpoint": base,
        "director_endpoint": base,
        "namespace_registration_endpoint": base,
        "jwks_uri": f"{base}/.well-known/issuer.jwks",
        "broker_endpoint": base,
    }
