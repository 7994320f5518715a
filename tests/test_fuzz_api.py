"""Fuzzing the API against its own OpenAPI document (schemathesis): generated requests for
every operation, a fixed seed, a live registration token; the director must answer none of
them with a server error or with a status code the document does not declare."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from helpers import configure_director
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance

from director.models import RegistrationToken

# Real commits: the WSGI handler closes the connection at each request start (CONN_MAX_AGE
# = 0), as in production, which would end a test-wide transaction on PostgreSQL.
pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 40  # per operation and mode: a few hundred requests in all


@pytest.fixture
def api_schema():
    configure_director()
    _, secret = RegistrationToken.issue("/origins/fuzz")
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())

    @loaded.auth()
    class RegistrationBearer:
        """The live token, on the operations that ask for one."""

        def get(self, case: object, context: object) -> str:
            return secret

        def set(self, case: schemathesis.Case, data: str, context: object) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return loaded


def test_no_server_error_and_no_undeclared_status(api_schema) -> None:
    """One hypothesis run per operation and mode (requests valid by the document, and
    invalid ones; schemathesis' own pytest plugin does not run on this pytest): each
    generated case is sent and checked."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    answered: dict[str, set[int]] = {}
    sent: list[schemathesis.Case] = []

    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=[not_a_server_error, status_code_conformance])
            answered.setdefault(case.operation.label, set()).add(response.status_code)
            sent.append(case)

        try:
            fuzz()
        except Unsatisfiable:
            # nothing to make invalid: an operation without parameters or body
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert len(sent) >= 300
    # the token reached the registration operations: some ads got past authentication
    registration = answered["POST /api/v1.0/director/registerOrigin"]
    assert registration - {401}, registration
