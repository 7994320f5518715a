"""Management commands: issuetoken, and the committed migrations match the models."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from helpers import make_ad

from director.models import RegistrationToken, Server


def issue(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("issuetoken", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_issuetoken_prints_only_the_secret_on_stdout(db):
    out, err = issue("/origins/site", "--description", "for scripts")

    secret = out.strip()
    assert out == f"{secret}\n"
    assert len(secret) >= 40 and " " not in secret
    token = RegistrationToken.objects.get()
    assert (token.registry_prefix, token.description) == ("/origins/site", "for scripts")
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in err
    assert err == f"Token #{token.pk} for /origins/site (shown only once):\n"


def test_each_issued_token_has_its_own_secret(db):
    first, _ = issue("/caches/site")
    second, _ = issue("/caches/site")

    assert first != second
    assert RegistrationToken.objects.filter(registry_prefix="/caches/site").count() == 2


def test_an_issued_token_registers_a_server(live_director):
    out, _ = issue("/origins/site")

    answer = live_director.advertise(
        make_ad("site", "origin", "http://127.0.0.1:9001"), token=out.strip()
    )

    assert answer.status_code == 200, answer.text
    assert Server.objects.get(name="site").registry_prefix == "/origins/site"


@pytest.mark.parametrize(
    "prefix",
    ["origins/site", "/origins/", "/origins", "/nodes/site", "/origins/a/b", "/caches/a b"],
)
def test_issuetoken_refuses_a_bad_prefix_with_a_clear_message(db, prefix):
    with pytest.raises(CommandError) as raised:
        issue(prefix)

    assert str(raised.value) == "Use /origins/<site> or /caches/<site> (one path segment)."
    assert RegistrationToken.objects.count() == 0


def test_issuetoken_refuses_an_empty_prefix(db):
    with pytest.raises(CommandError) as raised:
        issue("")

    assert "This field cannot be blank." in str(raised.value)
    assert str(raised.value).endswith("Use /origins/<site> or /caches/<site> (one path segment).")
    assert RegistrationToken.objects.count() == 0


def test_issuetoken_without_a_prefix_is_a_usage_error(db):
    with pytest.raises(CommandError, match="registry_prefix"):
        issue()


def test_issuetoken_records_the_namespaces_and_refuses_bad_ones(db, capsys):
    call_command("issuetoken", "/origins/site", "--namespace", "/a", "--namespace", "/b/c/")
    token = RegistrationToken.objects.get()
    assert token.allowed_namespaces() == ["/a", "/b/c"]
    assert token.allows_namespace("/a/x") and not token.allows_namespace("/ab")
    with pytest.raises(Exception, match="must start with '/'"):
        call_command("issuetoken", "/origins/site2", "--namespace", "relative")


def test_the_migrations_match_the_models(db):
    out = io.StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)

    assert out.getvalue() == "No changes detected\n"
