from __future__ import annotations

import pytest

from director.snapshot import NamespaceView, ServerView
from director.wire.headers import (
    CORS_HEADERS,
    ROOT_OPTIONS_ALLOW,
    authorization_lines,
    encode_query,
    go_html_escape,
    go_query_escape,
    link_header,
    namespace_header,
    object_url,
    redirect_body,
    redirect_query,
    scheme_and_host,
    server_base,
    strip_bearer,
    token_generation_header,
)
from director.wire.paths import go_path_escape
from director.wire.types import Capability, ServerKind, TokenGeneration, TokenIssuer

PUBLIC = Capability.PUBLIC_READS | Capability.READS
PROTECTED = Capability.READS
ISSUER = "https://origin.example.org:8443"


def namespace(path: str = "/ospool/ap40", caps: Capability = PUBLIC, **fields) -> NamespaceView:
    return NamespaceView(path=path, capabilities=caps, **fields)


def server(url: str = "https://origin.example.org:8443", auth_url: str = "") -> ServerView:
    return ServerView(
        name="origin-a", kind=ServerKind.ORIGIN, url=url, auth_url=auth_url, capabilities=PUBLIC
    )


# Link


def test_link_header_for_one_server():
    assert (
        link_header(["https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt"], 3)
        == '<https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
        "pri=1; depth=3"
    )


def test_link_header_lists_servers_in_priority_order_joined_by_comma_space():
    urls = [
        "https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt",
        "https://cache-b.example.org:8443/ospool/ap40/data/u/f.txt",
        "https://origin.example.org:8443/ospool/ap40/data/u/f.txt",
    ]
    assert link_header(urls, 3) == (
        '<https://cache-a.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
        "pri=1; depth=3, "
        '<https://cache-b.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
        "pri=2; depth=3, "
        '<https://origin.example.org:8443/ospool/ap40/data/u/f.txt>; rel="duplicate"; '
        "pri=3; depth=3"
    )


def test_link_header_writes_depth_zero():
    assert (
        link_header(["https://c.example/ns"], 0) == '<https://c.example/ns>; rel="duplicate"; '
        "pri=1; depth=0"
    )


# X-Pelican-Namespace


def test_namespace_header_for_a_public_namespace_without_collections():
    assert namespace_header(namespace(), "") == "namespace=/ospool/ap40, require-token=false"


def test_namespace_header_for_a_protected_namespace_with_collections_url():
    assert (
        namespace_header(namespace(caps=PROTECTED), "https://origin.example.org:8443")
        == "namespace=/ospool/ap40, require-token=true, "
        "collections-url=https://origin.example.org:8443"
    )


def test_namespace_header_require_token_follows_public_reads_only():
    listing_only = namespace(caps=Capability.LISTINGS | Capability.READS | Capability.WRITES)
    assert namespace_header(listing_only, "") == "namespace=/ospool/ap40, require-token=true"


# X-Pelican-Authorization


def test_authorization_lines_has_one_value_per_issuer():
    ns = namespace(
        token_issuers=(
            TokenIssuer(issuer="https://issuer-a.example.org", base_paths=("/a",)),
            TokenIssuer(issuer="https://issuer-b.example.org:8443/path"),
        )
    )
    assert authorization_lines(ns) == (
        "issuer=https://issuer-a.example.org",
        "issuer=https://issuer-b.example.org:8443/path",
    )


def test_authorization_lines_is_empty_without_issuers():
    assert authorization_lines(namespace()) == ()


# X-Pelican-Token-Generation


def test_token_generation_header_lists_keys_in_pelican_order():
    ns = namespace(
        token_issuers=(TokenIssuer(issuer=ISSUER, base_paths=("/ospool/ap40", "/other")),),
        token_generations=(TokenGeneration(strategy="OAuth2", max_scope_depth=3, issuer=ISSUER),),
    )
    assert token_generation_header(ns) == (
        "issuer=https://origin.example.org:8443, max-scope-depth=3, strategy=OAuth2, "
        "base-path=/ospool/ap40"
    )


def test_token_generation_header_takes_base_path_from_the_issuer_matching_the_generation():
    ns = namespace(
        token_issuers=(
            TokenIssuer(issuer="https://unrelated.example.org", base_paths=("/wrong",)),
            TokenIssuer(issuer=ISSUER, base_paths=("/right",)),
        ),
        token_generations=(TokenGeneration(strategy="OAuth2", max_scope_depth=3, issuer=ISSUER),),
    )
    assert token_generation_header(ns) == (
        "issuer=https://origin.example.org:8443, max-scope-depth=3, strategy=OAuth2, "
        "base-path=/right"
    )


def test_token_generation_header_has_no_base_path_when_no_issuer_matches():
    ns = namespace(
        token_issuers=(TokenIssuer(issuer="https://unrelated.example.org", base_paths=("/x",)),),
        token_generations=(TokenGeneration(strategy="OAuth2", max_scope_depth=3, issuer=ISSUER),),
    )
    assert token_generation_header(ns) == (
        "issuer=https://origin.example.org:8443, max-scope-depth=3, strategy=OAuth2"
    )


def test_token_generation_header_skips_empty_values_and_depth_zero():
    ns = namespace(
        token_issuers=(TokenIssuer(issuer=ISSUER, base_paths=("/ospool/ap40",)),),
        token_generations=(TokenGeneration(strategy="", max_scope_depth=0, issuer=ISSUER),),
    )
    assert token_generation_header(ns) == (
        "issuer=https://origin.example.org:8443, base-path=/ospool/ap40"
    )


def test_token_generation_header_with_only_a_strategy():
    ns = namespace(token_generations=(TokenGeneration(strategy="Vault"),))
    assert token_generation_header(ns) == "strategy=Vault"


def test_token_generation_header_uses_only_the_first_generation():
    ns = namespace(
        token_generations=(
            TokenGeneration(strategy="OAuth2", max_scope_depth=2, issuer=ISSUER),
            TokenGeneration(strategy="Vault", max_scope_depth=5, issuer="https://other.example"),
        )
    )
    assert token_generation_header(ns) == (
        "issuer=https://origin.example.org:8443, max-scope-depth=2, strategy=OAuth2"
    )


def test_token_generation_header_is_empty_without_generations():
    ns = namespace(token_issuers=(TokenIssuer(issuer=ISSUER, base_paths=("/a",)),))
    assert token_generation_header(ns) == ""


# Go escaping


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("/ospool/ap40/data/u/f.txt", "/ospool/ap40/data/u/f.txt"),
        ("/a-b_c.d~e/F0", "/a-b_c.d~e/F0"),
        ("/$&+,/:;=@", "/$&+,/:;=@"),
        ("/what?.txt", "/what%3F.txt"),
        ("/a b", "/a%20b"),
        ("/!'()*", "/%21%27%28%29%2A"),
        ("/100%", "/100%25"),
        ("/a#b", "/a%23b"),
        ('/"<>\\^`{|}', "/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("/[x]", "/%5Bx%5D"),
        ("/é/日本", "/%C3%A9/%E6%97%A5%E6%9C%AC"),
    ],
)
def test_go_path_escape_matches_go_escaped_path(path, escaped):
    assert go_path_escape(path) == escaped


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("abcXYZ019", "abcXYZ019"),
        ("-_.~", "-_.~"),
        ("a b", "a+b"),
        ("a+b", "a%2Bb"),
        ("$&+,/:;=?@", "%24%26%2B%2C%2F%3A%3B%3D%3F%40"),
        ("!'()*", "%21%27%28%29%2A"),
        ("#%", "%23%25"),
        ("é", "%C3%A9"),
        ("", ""),
    ],
)
def test_go_query_escape_matches_go_query_escape(value, escaped):
    assert go_query_escape(value) == escaped


def test_encode_query_sorts_keys_by_byte_and_keeps_value_order():
    pairs = [("b", "2"), ("a", "1"), ("b", "1"), ("B", "0"), ("c", "")]
    assert encode_query(pairs) == "B=0&a=1&b=2&b=1&c="


def test_encode_query_escapes_keys_and_values():
    assert encode_query([("a key", "x&y=z")]) == "a+key=x%26y%3Dz"


def test_strip_bearer_removes_only_a_leading_bearer_and_space():
    assert strip_bearer("Bearer abc") == "abc"
    assert strip_bearer("abc") == "abc"
    assert strip_bearer("bearer abc") == "bearer abc"
    assert strip_bearer("Basic abc") == "Basic abc"


# Location query


def test_redirect_query_is_empty_without_parameters_or_headers():
    assert redirect_query((), "", "") == ""


def test_redirect_query_copies_the_bearer_header_token_into_authz():
    assert redirect_query((), "Bearer eyJ.abc-_.sig", "") == "authz=eyJ.abc-_.sig"


def test_redirect_query_prefers_the_authz_query_over_the_header():
    assert redirect_query((("authz", "from-query"),), "Bearer from-header", "") == (
        "authz=from-query"
    )


def test_redirect_query_keeps_only_the_first_authz_value():
    assert redirect_query((("authz", "first"), ("authz", "second")), "", "") == "authz=first"


def test_redirect_query_takes_timeout_from_the_query_before_the_header():
    assert redirect_query((("pelican.timeout", "3s"),), "", "10s") == "pelican.timeout=3s"


def test_redirect_query_takes_timeout_from_x_pelican_timeout_header():
    assert redirect_query((), "", "10s") == "pelican.timeout=10s"


def test_redirect_query_re_emits_flags_with_empty_values():
    query = (("skipstat", "1"), ("directread", "yes"), ("prefercached", "true"))
    assert redirect_query(query, "", "") == "directread=&prefercached=&skipstat="


def test_redirect_query_forwards_every_other_parameter_in_go_order():
    query = (
        ("zeta", "last"),
        ("recursive", ""),
        ("alpha", "a b"),
        ("skipstat", ""),
        ("alpha", "x/y?z"),
    )
    assert redirect_query(query, "Bearer tok", "5s") == (
        "alpha=a+b&alpha=x%2Fy%3Fz&authz=tok&pelican.timeout=5s&recursive=&skipstat=&zeta=last"
    )


def test_redirect_query_escapes_reserved_characters_in_the_token():
    assert redirect_query((), "Bearer a+b/c=", "") == "authz=a%2Bb%2Fc%3D"


# Server URLs


def test_server_base_uses_auth_url_for_a_protected_namespace():
    ns = namespace(caps=PROTECTED)
    assert server_base(server(auth_url="https://auth.example.org:8444"), ns) == (
        "https://auth.example.org:8444"
    )


def test_server_base_uses_data_url_for_a_public_namespace_even_with_auth_url():
    assert server_base(server(auth_url="https://auth.example.org:8444"), namespace()) == (
        "https://origin.example.org:8443"
    )


def test_server_base_uses_data_url_for_a_protected_namespace_without_auth_url():
    assert server_base(server(), namespace(caps=PROTECTED)) == "https://origin.example.org:8443"


def test_object_url_prefixes_the_server_url_path():
    posix_origin = server(url="https://origin.example.org:8443/export")
    assert object_url(posix_origin, namespace(), "/ospool/ap40/f%20.txt") == (
        "https://origin.example.org:8443/export/ospool/ap40/f%20.txt"
    )


def test_scheme_and_host_drops_the_path():
    assert scheme_and_host("https://origin.example.org:8443/export/x") == (
        "https://origin.example.org:8443"
    )


# Redirect body and fixed headers


def test_redirect_body_is_go_http_redirect_html():
    assert redirect_body("https://cache.example.org/ns/f.txt") == (
        b'<a href="https://cache.example.org/ns/f.txt">Temporary Redirect</a>.\n\n'
    )


def test_redirect_body_html_escapes_the_location_like_go():
    assert redirect_body("https://c.example/a?x=1&y=\"2\"&z='<3>'") == (
        b'<a href="https://c.example/a?x=1&amp;y=&#34;2&#34;&amp;z=&#39;&lt;3&gt;&#39;">'
        b"Temporary Redirect</a>.\n\n"
    )


def test_go_html_escape_escapes_ampersand_once():
    assert go_html_escape("&lt;") == "&amp;lt;"


def test_root_options_allow_header():
    assert ROOT_OPTIONS_ALLOW == "HEAD,GET,PUT,PROPFIND,COPY,OPTIONS,POST"


def test_cors_headers_match_pelican():
    assert CORS_HEADERS == (
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, PUT, OPTIONS, PROPFIND"),
        ("Access-Control-Allow-Headers", "Content-Type, Authorization, Depth"),
        (
            "Access-Control-Expose-Headers",
            "Content-Type, Authorization, X-Pelican-User, X-Pelican-Timeout, "
            "X-Pelican-Token-Generation, X-Pelican-Authorization, X-Pelican-Namespace",
        ),
    )
