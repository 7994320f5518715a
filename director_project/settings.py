"""Django settings for the director, read from the environment.

Every variable is documented in the README with its default. Never import gevent or patch
here: the entry points (manage.py, gunicorn.conf.py, the pytest plugin) do that first.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import django_stubs_ext

from director.serving.shedding import CONNECTION_RESERVE
from director_project.envconf import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
)

# Django's generic classes (ModelAdmin[Server], QuerySet[Server]...) subscriptable at run
# time, as the type checker sees them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The default key is for a laptop; system check director.W001 warns when it is used
# with DEBUG off. It signs admin sessions only: registration tokens are hashed, not signed.
INSECURE_DEFAULT_SECRET_KEY = "director-insecure-development-key-change-me"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
# A director answers for many host names (virtual-host routing, proxies): all by default.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Production behind TLS: HSTS, plain HTTP redirected to HTTPS, cookies only over HTTPS
# (``manage.py check --deploy`` is clean with it and a secret key of one's own). Applies to
# the admin and the API; redirects answer before Django's middleware, on any scheme.
DJANGO_SECURE = env_bool("DJANGO_SECURE", False)
SECURE_HSTS_SECONDS = 31_536_000 if DJANGO_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = DJANGO_SECURE
SECURE_HSTS_PRELOAD = DJANGO_SECURE
SECURE_SSL_REDIRECT = DJANGO_SECURE
# Load balancers and scrapers probe these over plain HTTP too.
SECURE_REDIRECT_EXEMPT = [r"^api/v1\.0/health$", r"^metrics$"]
SESSION_COOKIE_SECURE = DJANGO_SECURE
CSRF_COOKIE_SECURE = DJANGO_SECURE
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_TRUST_FORWARDED_PROTO", False) else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "axes",
    "director",
]

MIDDLEWARE = [
    "director.middleware.FrontDoorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its answer.
    "axes.middleware.AxesMiddleware",
]

# Admin logins are throttled (django-axes): after DIRECTOR_ADMIN_LOGIN_FAILURES failures
# from one client address (any user name), or for one user name from one address, logins
# from it are refused with 429 for DIRECTOR_ADMIN_LOCKOUT_SECONDS; a successful login
# clears the count. Never per user name alone: whoever reaches the login page could then
# lock every administrator out, from everywhere.
DIRECTOR_ADMIN_LOGIN_FAILURES = env_int("DIRECTOR_ADMIN_LOGIN_FAILURES", 5, minimum=1)
DIRECTOR_ADMIN_LOCKOUT_SECONDS = env_float("DIRECTOR_ADMIN_LOCKOUT_SECONDS", 900.0, minimum=1.0)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = DIRECTOR_ADMIN_LOGIN_FAILURES
AXES_COOLOFF_TIME = dt.timedelta(seconds=DIRECTOR_ADMIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "director.locate.client_ip"  # trusted proxies as for redirects
AXES_LOCKOUT_CALLABLE = "director.views.admin_locked_out"
AXES_VERBOSE = False

ROOT_URLCONF = "director_project.urls"
WSGI_APPLICATION = "director_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# A database that is down or hung costs a request at most these (seconds): connecting,
# and each statement (PostgreSQL; on the server, so a frozen server is bounded by the
# director's own request deadline, DIRECTOR_DB_REQUEST_TIMEOUT).
DIRECTOR_DB_CONNECT_TIMEOUT = env_float("DIRECTOR_DB_CONNECT_TIMEOUT", 3.0, minimum=1.0)
DIRECTOR_DB_STATEMENT_TIMEOUT = env_float("DIRECTOR_DB_STATEMENT_TIMEOUT", 5.0, minimum=0.1)
# A request that needs the database is answered 503 (Retry-After) past this, and at most
# this many are served at once, apart from redirects (director.serving.database).
DIRECTOR_DB_REQUEST_TIMEOUT = env_float("DIRECTOR_DB_REQUEST_TIMEOUT", 10.0, minimum=0.5)
DIRECTOR_DB_MAX_INFLIGHT = env_int("DIRECTOR_DB_MAX_INFLIGHT", 50, minimum=1)
# PostgreSQL connections per process: the requests' budget, and the background work
# (registry watcher, health tests, its own directors ad).
DATABASE_BACKGROUND_CONNECTIONS = 5
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        BASE_DIR,
        connect_timeout=DIRECTOR_DB_CONNECT_TIMEOUT,
        statement_timeout=DIRECTOR_DB_STATEMENT_TIMEOUT,
        pool_size=DIRECTOR_DB_MAX_INFLIGHT + DATABASE_BACKGROUND_CONNECTIONS,
    )
}

# Django's PBKDF2, computed in gevent's thread pool (director/hashers.py: a check costs
# ~250 ms of CPU, which held every request's event loop); the same stored format.
PASSWORD_HASHERS = [
    "director.hashers.ThreadedPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Request bodies (advertisements, admin forms) larger than this are refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LANGUAGE_CODE = "en-us"
# The admin's times with seconds and zone (director_project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["director_project.formats"]
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            # Control characters in messages (from ads, paths) are escaped: no forged lines.
            "()": "director.serving.logsafe.EscapingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DIRECTOR_LOG_LEVEL", "INFO").upper()},
    # django.request would log every 4xx as a warning: a burst of 429s (load shedding)
    # must not turn into a burst of blocking log writes. 5xx are still logged.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},  # every failed login at INFO otherwise
    },
}

# --- Director ------------------------------------------------------------------------------
# Public URL of this director (discovery, its own ad, messages, the issuer of the tokens
# it mints, the audience of the advertise tokens it accepts). Empty: taken from each
# request's scheme and Host, and getFedToken mints nothing (503; system check
# director.W002 under --deploy, and a warning line of `manage.py serve`).
DIRECTOR_EXTERNAL_URL = env_str("DIRECTOR_EXTERNAL_URL", "").rstrip("/")
DIRECTOR_NAME = env_str("DIRECTOR_NAME", socket.gethostname())
# Lifetime of an advertisement that carries no expiry (Pelican's Director.AdvertisementTTL).
DIRECTOR_AD_TTL = env_float("DIRECTOR_AD_TTL", 900.0, minimum=1.0)
# Where root-path GET/HEAD go: "cache" or "origin" (Pelican's Director.DefaultResponse).
DIRECTOR_DEFAULT_RESPONSE = env_str("DIRECTOR_DEFAULT_RESPONSE", "cache")
DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES = env_list("DIRECTOR_ORIGIN_RESPONSE_HOSTNAMES")
DIRECTOR_CACHE_RESPONSE_HOSTNAMES = env_list("DIRECTOR_CACHE_RESPONSE_HOSTNAMES")
# How often each process checks the registry's change counter (seconds).
DIRECTOR_REGISTRY_POLL_INTERVAL = env_float("DIRECTOR_REGISTRY_POLL_INTERVAL", 1.0, minimum=0.05)
# Seconds between full rebuilds of the routing snapshot, a consistency check besides the
# per-change deltas (lapsed ads leave the snapshot then too).
# Seconds between renewals of this director's own ad in the shared registry (it lives
# three of them): /api/v1.0/director/directors and discovery list the live directors.
DIRECTOR_SELF_AD_INTERVAL = env_float("DIRECTOR_SELF_AD_INTERVAL", 10.0, minimum=0.2)
DIRECTOR_REGISTRY_FULL_SYNC_INTERVAL = env_float(
    "DIRECTOR_REGISTRY_FULL_SYNC_INTERVAL", 300.0, minimum=1.0
)
# Idle keep-alive connections are closed after this many seconds (`manage.py serve`).
DIRECTOR_KEEPALIVE_TIMEOUT = env_float("DIRECTOR_KEEPALIVE_TIMEOUT", 5.0, minimum=0.1)
# A MaxMind-format city database (GeoLite2-City.mmdb) for client and server locations.
DIRECTOR_GEOIP_DB = env_str("DIRECTOR_GEOIP_DB", "")
# Clients that cannot be located get a random, sticky point in this box:
# lat_min,lat_max,long_min,long_max (the contiguous US, as in Pelican).
DIRECTOR_DEFAULT_REGION = env_str("DIRECTOR_DEFAULT_REGION", "30,50,-125,-65")
# Peers (addresses or CIDRs) whose X-Forwarded-For names the client.
DIRECTOR_TRUSTED_PROXIES = env_list("DIRECTOR_TRUSTED_PROXIES")
# Connections a `manage.py serve` process accepts beyond max in-flight requests, so that
# it can still answer 429, /metrics and health when all request slots are taken.
DIRECTOR_CONNECTION_RESERVE = env_int("DIRECTOR_CONNECTION_RESERVE", CONNECTION_RESERVE, minimum=1)
# Connections beyond those that only read their request and answer 429 (Connection:
# close); beyond these too, a connection is closed at once (director.serving.wsgiserver).
DIRECTOR_OVERFLOW_CONNECTIONS = env_int("DIRECTOR_OVERFLOW_CONNECTIONS", 1000, minimum=1)
# The operator console at /view/ (director.console): staff login unless this makes it a
# public, read-only view (its pages and their JSON; the admin stays staff only).
DIRECTOR_CONSOLE_PUBLIC = env_bool("DIRECTOR_CONSOLE_PUBLIC", False)
# Seconds between the console pages' refreshes (each polls its JSON).
DIRECTOR_CONSOLE_REFRESH = env_float("DIRECTOR_CONSOLE_REFRESH", 5.0, minimum=1.0)

# --- An external Pelican registry (director.federation.external) ----------------------------
# Pelican's Federation.RegistryUrl: the base URL of a Pelican registry this director uses
# instead of its own registry tables (advertise tokens verified with the keys it serves,
# approval asked of it, cache allowed prefixes and downtimes polled from it). Empty: this
# director is its own registry. When only DIRECTOR_FEDERATION_DISCOVERY_URL is set, the
# registry is that document's namespace_registration_endpoint.
DIRECTOR_REGISTRY_URL = env_str("DIRECTOR_REGISTRY_URL", "").rstrip("/")
# Pelican's Director.RegistryQueryInterval: seconds between polls of the external
# registry's cache allowed prefixes and downtimes (director.ops.registrypolls); polled data
# older than three intervals is reported in health.
DIRECTOR_REGISTRY_QUERY_INTERVAL = env_float("DIRECTOR_REGISTRY_QUERY_INTERVAL", 60.0, minimum=1.0)
# Pelican's Federation.DiscoveryUrl: the federation's discovery document when it lives
# elsewhere (OSDF: a static document on another host). Empty: this director's own.
DIRECTOR_FEDERATION_DISCOVERY_URL = env_str("DIRECTOR_FEDERATION_DISCOVERY_URL", "").rstrip("/")

# --- Pelican registry and federation issuer (director.federation) ----------------------------
# The two ways a server may advertise: Pelican's (a namespace registered here with its
# public keys, approved, and ads signed with those keys) and this director's own bearer
# registration tokens (issuetoken, the admin). Either may be turned off.
DIRECTOR_PELICAN_REGISTRATION = env_bool("DIRECTOR_PELICAN_REGISTRATION", True)
DIRECTOR_TOKEN_REGISTRATION = env_bool("DIRECTOR_TOKEN_REGISTRATION", True)
# Pelican's Registry.RequireOriginApproval / RequireCacheApproval (Pelican's default is
# off, OSDF's on): a registration advertises only once an administrator approved it.
DIRECTOR_REQUIRE_ORIGIN_APPROVAL = env_bool("DIRECTOR_REQUIRE_ORIGIN_APPROVAL", True)
DIRECTOR_REQUIRE_CACHE_APPROVAL = env_bool("DIRECTOR_REQUIRE_CACHE_APPROVAL", True)
# Pelican's Registry.RequireKeyChaining: a namespace inside or around a registered one
# needs one of that registration's keys.
DIRECTOR_REQUIRE_KEY_CHAINING = env_bool("DIRECTOR_REQUIRE_KEY_CHAINING", True)
# Seconds a registry challenge (the server nonce of a registration's or a key update's
# init) may be used in, once; and how many challenges one client address may ask for a
# minute (per process).
DIRECTOR_REGISTRY_CHALLENGE_SECONDS = env_float(
    "DIRECTOR_REGISTRY_CHALLENGE_SECONDS", 300.0, minimum=10.0
)
DIRECTOR_REGISTRY_CHALLENGES_PER_MINUTE = env_int(
    "DIRECTOR_REGISTRY_CHALLENGES_PER_MINUTE", 600, minimum=1
)
# Pelican's Registry.InactiveRegistrationTimeout (20 min) and its check interval (5 min):
# with both approval flags on, a server whose registrations are all pending and which has
# not asked for its server record this long is deleted, with its pending namespaces.
DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT = env_float(
    "DIRECTOR_INACTIVE_REGISTRATION_TIMEOUT", 1200.0, minimum=60.0
)
DIRECTOR_INACTIVE_REGISTRATION_CHECK_INTERVAL = env_float(
    "DIRECTOR_INACTIVE_REGISTRATION_CHECK_INTERVAL", 300.0, minimum=1.0
)
# Advertise tokens must name this director in "aud" (its external URL, http or https);
# these URLs too (comma-separated), for a director reached under other names.
DIRECTOR_ADVERTISE_AUDIENCES = env_list("DIRECTOR_ADVERTISE_AUDIENCES")
# The longest lifetime (exp - iat, and exp - now) of an advertise token accepted, seconds
# (Pelican's servers mint 1 minute ones; 60 s leeway on top).
DIRECTOR_ADVERTISE_TOKEN_MAX_LIFETIME = env_float(
    "DIRECTOR_ADVERTISE_TOKEN_MAX_LIFETIME", 300.0, minimum=60.0
)
# An address whose advertisements were refused this many times in a minute (a token
# that does not verify, an ad it may not send) is answered 429 with Retry-After until
# the minute ends, before its requests are read; 0: no limit.
DIRECTOR_REFUSED_ADS_PER_MINUTE = env_int("DIRECTOR_REFUSED_ADS_PER_MINUTE", 60, minimum=0)
# Lifetime of the tokens getFedToken mints (Pelican's Director.FedTokenLifetime).
DIRECTOR_FED_TOKEN_LIFETIME = env_float("DIRECTOR_FED_TOKEN_LIFETIME", 900.0, minimum=60.0)
# The federation issuer's private keys are stored encrypted with this passphrase, given
# in the environment or (better: not in the process's environment) in a file; empty:
# stored in plaintext (director.federation.keystore; checks director.E061/E062/W061).
DIRECTOR_ISSUER_KEY_PASSPHRASE = env_str("DIRECTOR_ISSUER_KEY_PASSPHRASE", "")
DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE = env_str("DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE", "")
# Pelican's Federation.JwkUrl: the federation's published key set, named as jwks_uri by
# discovery (and openid-configuration) when DIRECTOR_FEDERATION_DISCOVERY_URL names the
# federation; empty: this director's own /.well-known/issuer.jwks (check director.E071).
DIRECTOR_FEDERATION_JWKS_URL = env_str("DIRECTOR_FEDERATION_JWKS_URL", "")
# Named in the approval_error answer (Pelican's Director.SupportContactEmail / Url).
DIRECTOR_SUPPORT_CONTACT_EMAIL = env_str("DIRECTOR_SUPPORT_CONTACT_EMAIL", "")
DIRECTOR_SUPPORT_CONTACT_URL = env_str("DIRECTOR_SUPPORT_CONTACT_URL", "")
