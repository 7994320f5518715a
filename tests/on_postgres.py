"""``make test``'s second pass: the database-touching tests again, on PostgreSQL.

Uses the PostgreSQL server at ``DIRECTOR_TEST_POSTGRES`` (default: the machine's,
``postgres://postgres@127.0.0.1:5432/postgres``). pytest-django creates a fresh test
database under a unique name and drops it at the end. Without a server that answers, it
prints why and exits 0: the SQLite pass has run everything.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("DIRECTOR_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
# The tests that read or write the registry: every registry model, the API over it, the
# admin, the change counter and its deltas, and the processes that share one database.
FILES = [
    "tests/test_registration.py",
    "tests/test_registration_tokens.py",
    "tests/test_registration_bad_ads.py",
    "tests/test_registration_readvertisement.py",
    "tests/test_registration_expiry.py",
    "tests/test_admin.py",
    "tests/test_admin_truth.py",
    "tests/test_console.py",
    "tests/test_api.py",
    "tests/test_api_limits.py",
    "tests/test_openapi.py",
    "tests/test_openapi_document.py",
    "tests/test_registry_changes.py",
    "tests/test_registry_deltas.py",
    "tests/test_routability.py",
    "tests/test_downtimes.py",
    "tests/test_healthtests.py",
    "tests/test_healthtests_files.py",
    "tests/test_healthtests_rounds.py",
    "tests/test_settings_defaults.py",
    "tests/test_database_budget.py",
    "tests/test_explain.py",
    "tests/test_commands.py",
    "tests/test_redirect_service.py",
    "tests/test_directors.py",
    "tests/test_bad_input.py",
    "tests/test_fuzz_api.py",
    "tests/test_fuzz_inputs.py",
    "tests/test_registry_protocol.py",
    "tests/test_federation_issuer.py",
    # the trust paths under attack (issue 24) and the external registry (issue 19)
    "tests/test_security_challenges.py",
    "tests/test_security_chaining.py",
    "tests/test_security_denial.py",
    "tests/test_security_cross_mode.py",
    "tests/test_security_tokens.py",
    "tests/test_security_published.py",
    "tests/test_security_keys_at_rest.py",
    "tests/test_external_registry.py",
    "tests/test_registry_polls.py",
    "tests/test_registry_downtime_route.py",
    "tests/test_federation_identity.py",
    "tests/test_importissuerkey.py",
]


def main() -> int:
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        print(f"PostgreSQL pass skipped: no server answers at {ADMIN_URL} ({error})")
        return 0
    parts = urlsplit(ADMIN_URL)
    name = f"director_{secrets.token_hex(4)}"  # pytest-django tests in test_<name>
    url = parts._replace(path=f"/{name}").geturl()
    print(f"PostgreSQL pass: {len(FILES)} test files on {parts.hostname}:{parts.port}")
    env = dict(os.environ, DATABASE_URL=url)
    command = [sys.executable, "-m", "pytest", *sys.argv[1:], *FILES]
    return subprocess.run(command, cwd=REPO, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
