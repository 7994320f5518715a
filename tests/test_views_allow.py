"""A method an endpoint does not take is answered 405 with an Allow line that lists, in
Pelican's order, the methods it does take (built from the views' method tuples)."""

from __future__ import annotations

import pytest
from django.test import Client

ALLOW = [
    ("POST", "/api/v1.0/director/object/test/f", "GET, HEAD, OPTIONS"),
    ("POST", "/api/v1.0/director/origin/test/f", "GET, HEAD, PUT, DELETE, PROPFIND, COPY, OPTIONS"),
    ("PUT", "/api/v1.0/director/healthTest/pelican/monitoring/x", "GET, HEAD, PROPFIND"),
    ("OPTIONS", "/test/f", "HEAD,GET,PUT,PROPFIND,COPY,OPTIONS,POST"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "allow"), ALLOW)
def test_a_refused_method_is_answered_with_the_allowed_ones(method, path, allow):
    answer = Client().generic(method, path)
    assert answer.status_code == (200 if method == "OPTIONS" else 405)
    assert answer["Allow"] == allow
