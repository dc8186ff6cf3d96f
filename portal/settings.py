"""Cluster Portal settings: one module, every knob an environment variable.

Each variable is listed with its default in `.env.example`. Nothing secret has a
default outside DEBUG or the demo.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from portal.gateway_defaults import GatewayDefaults

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# The demo runs on the embedded defaults (SQLite, the simulator, a file broker).
DEMO = env.bool("PORTAL_DEMO", default=False)
# Writing migrations reads the models only: it needs no secret, so a checkout can run
# `manage.py makemigrations --check` without a production environment.
_SECRETLESS = sys.argv[1:2] == ["makemigrations"]
LAX = DEBUG or DEMO or _SECRETLESS

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not LAX:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG or PORTAL_DEMO is set")
    SECRET_KEY = "insecure-dev-key-" + hashlib.sha256(str(BASE_DIR).encode()).hexdigest()

# Key for secrets at rest (node API token secrets, ...): a urlsafe-base64 Fernet key,
# or several separated by commas (the first encrypts, all decrypt: key rotation).
_field_keys = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not _field_keys:
    if not LAX:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is required unless DEBUG or PORTAL_DEMO")
    _field_keys = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]
FIELD_ENCRYPTION_KEYS: list[str] = _field_keys

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",
    "networking",
    "containers",
    "auth.apps.AccountsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.navigation",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions let the web process and the workers share the
    # file without "database is locked"; the test database is a file too, so that a
    # separate worker process sees what the tests write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30}
    )
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("TEST_SQLITE_NAME", default=str(VAR_DIR / "test-portal.sqlite3"))
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
# Browser libraries installed by `make install` (npm ci, at package-lock.json's versions),
# served and collected as static files under a prefix: never copied into the repository.
STATICFILES_DIRS = [("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist")]

LOGIN_URL = "/accounts/login/"

# --- REST API ---------------------------------------------------------------------
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/minute")
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="60/minute")
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"user": API_THROTTLE_USER, "anon": API_THROTTLE_ANON},
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.PagePagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["portal.api.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cluster Portal API",
    "DESCRIPTION": "Self-service LXC containers on Proxmox VE. Asynchronous work answers 202 with a job.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.document_query_errors",
    ],
    # Three choice sets are called "kind" (jobs, resource requests and alerts).
    "ENUM_NAME_OVERRIDES": {
        "JobKindEnum": "containers.models.JobKind",
        "ResourceRequestKindEnum": "auth.models.RequestKind",
        "AlertKindEnum": "containers.metrics.models.AlertKind",
        "RouteProtocolEnum": "networking.models.RouteProtocol",
        "PortProtocolEnum": "networking.models.PortProtocol",
        # A route's `access` and a create's `route_access`: one enum, under its first name.
        "AccessEnum": "networking.models.RouteAccess",
    },
}

# --- security (production values unless DEBUG) ---------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not LAX)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not LAX)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not LAX)
# Probes and Prometheus may ask gunicorn directly over plain HTTP on the host (loopback).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if LAX else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not LAX
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not LAX)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Host-only (no Domain), and `__Host-` wherever the cookie is Secure: a browser never sends
# them to a container's subdomain, and no subdomain can plant one on the portal.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_NAME = ("__Host-" if SESSION_COOKIE_SECURE else "") + "portal_session"
CSRF_COOKIE_NAME = ("__Host-" if CSRF_COOKIE_SECURE else "") + "portal_csrf"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): no inline script or style anywhere, nothing from
# other origins, no framing. Templates load portal/app.js and app.css and carry data-*
# attributes instead of handlers (tests/test_csp.py checks every template). The admin
# and the API docs pass it as they are (Swagger UI through its split view).
from csp.constants import NONE, SELF  # noqa: E402

MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- the web server and event streams (deploy/gunicorn.conf.py) ---------------------
# gunicorn runs WEB_CONCURRENCY processes of WEB_THREADS threads. A job's event stream
# holds a thread while it is open, so each process gives streams at most
# EVENT_STREAM_MAX_PER_PROCESS of its threads (default: half) and keeps the rest for
# every other request; past that a stream is refused with 503 and Retry-After.
WEB_THREADS = env.int("WEB_THREADS", default=8)
EVENT_STREAM_MAX_PER_PROCESS = env.int(
    "EVENT_STREAM_MAX_PER_PROCESS", default=max(1, WEB_THREADS // 2)
)
# Open streams per user, counted in the cache (CACHE_URL: Redis in production, so the
# count holds across processes); one more is refused with 429 and Retry-After.
EVENT_STREAM_MAX_PER_USER = env.int("EVENT_STREAM_MAX_PER_USER", default=4)
# A stream ends after this many seconds; the browser reconnects with Last-Event-ID.
EVENT_STREAM_MAX_SECONDS = env.float("EVENT_STREAM_MAX_SECONDS", default=90.0)

# --- Celery ---------------------------------------------------------------------
# With no broker URL the portal uses kombu's filesystem transport under var/, so the
# demo needs no Redis; tests and production give a redis:// URL.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
JOB_TIME_LIMIT = env.int("JOB_TIME_LIMIT", default=1800)
# A running job whose worker has not touched it for this long is taken to be lost:
# another worker may claim it, and reconciliation resumes or fails it.
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=120)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=6)
JOB_RETRY_BACKOFF = env.float("JOB_RETRY_BACKOFF", default=2.0)
JOB_RETRY_BACKOFF_MAX = env.float("JOB_RETRY_BACKOFF_MAX", default=60.0)
RECONCILE_INTERVAL = env.int("RECONCILE_INTERVAL", default=60)
# The reconciler (containers/reconciler.py): how often every site is compared with Proxmox.
RECONCILE_SITES_INTERVAL = env.int("RECONCILE_SITES_INTERVAL", default=300)
RECONCILE_KEEP_DAYS = env.int("RECONCILE_KEEP_DAYS", default=14)
# Node health (containers/health.py): the beat probe's period, which is also how often a
# job held by an offline node looks again, and how long such a job waits before failing.
NODE_PROBE_INTERVAL = env.float("NODE_PROBE_INTERVAL", default=30.0)
NODE_DOWN_WAIT_MAX = env.float("NODE_DOWN_WAIT_MAX", default=3600.0)

# --- Proxmox ----------------------------------------------------------------------
VMID_MIN = env.int("VMID_MIN", default=100)
VMID_MAX = env.int("VMID_MAX", default=999_999)
# How old the cluster's VMID listing a create skips may be before a thread asks again.
PROXMOX_VMIDS_MAX_AGE = env.float("PROXMOX_VMIDS_MAX_AGE", default=30.0)
PROXMOX_TIMEOUT = env.float("PROXMOX_TIMEOUT", default=15.0)
PROXMOX_TASK_POLL_INTERVAL = env.float("PROXMOX_TASK_POLL_INTERVAL", default=0.2)
# After this many seconds a task is a long one (a big template, a slow disk): poll it less.
PROXMOX_TASK_POLL_SLOW_AFTER = env.float("PROXMOX_TASK_POLL_SLOW_AFTER", default=10.0)
PROXMOX_TASK_POLL_SLOW_INTERVAL = env.float("PROXMOX_TASK_POLL_SLOW_INTERVAL", default=1.0)
PROXMOX_TASK_TIMEOUT = env.float("PROXMOX_TASK_TIMEOUT", default=600.0)
# A waiting job asks for its task's own status at least this often, whatever the shared
# poll of the node's task list says (containers/taskwatch.py).
PROXMOX_TASK_CHECK_INTERVAL = env.float("PROXMOX_TASK_CHECK_INTERVAL", default=5.0)
# Tag put on every container the portal makes; it is how the portal recognises its own.
PROXMOX_MANAGED_TAG = env.str("PROXMOX_MANAGED_TAG", default="cluster-portal")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes says "AXES: BEGIN version ..." at every start, so on stderr of every
        # manage.py command; its warnings (lockouts) still show.
        "axes.apps": {"level": "WARNING"},
    },
}

# --- identity (auth/, app label `accounts`) -------------------------------------------
# One LDAP account everywhere: the portal login (django-auth-ldap), the container access
# groups and SSH keys (ldap3 writes), and Proxmox's LDAP realm. See docs/identity.md.
from datetime import timedelta  # noqa: E402

import ldap  # noqa: E402  (python-ldap, for django-auth-ldap's options)
from django_auth_ldap.config import (  # noqa: E402
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    NestedGroupOfNamesType,
    PosixGroupType,
)

INSTALLED_APPS += [
    "django_otp",  # TOTP devices are accounts.AuthenticatorDevice (keys encrypted at rest)
    "axes",
]
_auth_mw = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
MIDDLEWARE[_auth_mw + 1 : _auth_mw + 1] = [
    "django_otp.middleware.OTPMiddleware",
    "auth.middleware.AuditContextMiddleware",
    "auth.middleware.OtpRequiredMiddleware",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out users and addresses
    "auth.backends.PortalLDAPBackend",
    "auth.backends.BreakGlassModelBackend",
]
# Local (non-LDAP) passwords are for break-glass operators (staff or superusers) only,
# unless this lets ordinary users have them too.
LOCAL_LOGIN_FOR_USERS = env.bool("LOCAL_LOGIN_FOR_USERS", default=False)

LDAP_BASE_DN = env.str("LDAP_BASE_DN", default="dc=example,dc=test")
AUTH_LDAP_SERVER_URI = env.str("AUTH_LDAP_SERVER_URI", default="")  # empty: no LDAP at all
AUTH_LDAP_START_TLS = env.bool("AUTH_LDAP_START_TLS", default=False)
AUTH_LDAP_CA_FILE = env.str("AUTH_LDAP_CA_FILE", default="")
AUTH_LDAP_TIMEOUT = env.float("AUTH_LDAP_TIMEOUT", default=5.0)
AUTH_LDAP_BIND_DN = env.str("AUTH_LDAP_BIND_DN", default="")
AUTH_LDAP_BIND_PASSWORD = env.str("AUTH_LDAP_BIND_PASSWORD", default="")
AUTH_LDAP_USER_SEARCH_BASE = env.str(
    "AUTH_LDAP_USER_SEARCH_BASE", default=f"ou=people,{LDAP_BASE_DN}"
)
AUTH_LDAP_USER_FILTER = env.str("AUTH_LDAP_USER_FILTER", default="(uid=%(user)s)")
AUTH_LDAP_USER_DN_TEMPLATE = env.str("AUTH_LDAP_USER_DN_TEMPLATE", default="") or None
AUTH_LDAP_USER_SEARCH = LDAPSearch(
    AUTH_LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, AUTH_LDAP_USER_FILTER
)
AUTH_LDAP_USER_ATTR_MAP = {"first_name": "givenName", "last_name": "sn", "email": "mail"}
AUTH_LDAP_ALWAYS_UPDATE_USER = True
AUTH_LDAP_GROUP_SEARCH_BASE = env.str(
    "AUTH_LDAP_GROUP_SEARCH_BASE", default=f"ou=groups,{LDAP_BASE_DN}"
)
AUTH_LDAP_GROUP_FILTER = env.str("AUTH_LDAP_GROUP_FILTER", default="(objectClass=groupOfNames)")
AUTH_LDAP_GROUP_SEARCH = LDAPSearch(
    AUTH_LDAP_GROUP_SEARCH_BASE, ldap.SCOPE_SUBTREE, AUTH_LDAP_GROUP_FILTER
)
_ldap_group_types = {
    "groupOfNames": GroupOfNamesType,
    "groupOfUniqueNames": GroupOfUniqueNamesType,
    "posixGroup": PosixGroupType,
    "nestedGroupOfNames": NestedGroupOfNamesType,
}
_ldap_group_type = env.str("AUTH_LDAP_GROUP_TYPE", default="groupOfNames")
if _ldap_group_type not in _ldap_group_types:
    raise ImproperlyConfigured(f"AUTH_LDAP_GROUP_TYPE must be one of {sorted(_ldap_group_types)}")
AUTH_LDAP_GROUP_TYPE = _ldap_group_types[_ldap_group_type]()
# Directory groups become Django groups (quota policies are attached to those).
AUTH_LDAP_MIRROR_GROUPS = env.bool("AUTH_LDAP_MIRROR_GROUPS", default=True)
AUTH_LDAP_REQUIRE_GROUP = env.str("AUTH_LDAP_REQUIRE_GROUP", default="") or None
AUTH_LDAP_DENY_GROUP = env.str("AUTH_LDAP_DENY_GROUP", default="") or None
AUTH_LDAP_STAFF_GROUP = env.str("AUTH_LDAP_STAFF_GROUP", default="")
AUTH_LDAP_SUPERUSER_GROUP = env.str("AUTH_LDAP_SUPERUSER_GROUP", default="")
AUTH_LDAP_USER_FLAGS_BY_GROUP = {
    flag: dn
    for flag, dn in (
        ("is_staff", AUTH_LDAP_STAFF_GROUP),
        ("is_superuser", AUTH_LDAP_SUPERUSER_GROUP),
    )
    if dn
}
AUTH_LDAP_GLOBAL_OPTIONS = {
    ldap.OPT_NETWORK_TIMEOUT: AUTH_LDAP_TIMEOUT,
    ldap.OPT_TIMEOUT: AUTH_LDAP_TIMEOUT,
    ldap.OPT_REFERRALS: 0,
}
if AUTH_LDAP_CA_FILE:
    AUTH_LDAP_GLOBAL_OPTIONS.update(
        {
            ldap.OPT_X_TLS_CACERTFILE: AUTH_LDAP_CA_FILE,
            ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
        }
    )
AUTH_LDAP_CONNECTION_OPTIONS = {ldap.OPT_X_TLS_NEWCTX: 0} if AUTH_LDAP_CA_FILE else {}

# Directory writes with ldap3 (container access groups, sshPublicKey): one pool.
LDAP_WRITE_BIND_DN = env.str("LDAP_WRITE_BIND_DN", default="")  # default: AUTH_LDAP_BIND_DN
LDAP_WRITE_BIND_PASSWORD = env.str("LDAP_WRITE_BIND_PASSWORD", default="")
LDAP_POOL_SIZE = env.int("LDAP_POOL_SIZE", default=4)
LDAP_USER_UID_ATTR = env.str("LDAP_USER_UID_ATTR", default="uid")
LDAP_CONTAINER_GROUP_BASE = env.str(
    "LDAP_CONTAINER_GROUP_BASE", default=f"ou=containers,{LDAP_BASE_DN}"
)
LDAP_CONTAINER_GROUP_PREFIX = env.str("LDAP_CONTAINER_GROUP_PREFIX", default="ct-")
LDAP_CONTAINER_GROUP_TYPE = env.str("LDAP_CONTAINER_GROUP_TYPE", default="posixGroup")
if LDAP_CONTAINER_GROUP_TYPE not in ("posixGroup", "groupOfNames"):
    raise ImproperlyConfigured("LDAP_CONTAINER_GROUP_TYPE must be posixGroup or groupOfNames")
LDAP_CONTAINER_GID_BASE = env.int("LDAP_CONTAINER_GID_BASE", default=200000)
LDAP_SSH_KEYS = env.bool("LDAP_SSH_KEYS", default=True)

# Proxmox: the LDAP realm that knows the same users, and the role on /vms/<vmid>.
PROXMOX_ACCESS_ENABLED = env.bool("PROXMOX_ACCESS_ENABLED", default=True)
PROXMOX_REALM = env.str("PROXMOX_REALM", default="ldap")
PROXMOX_VM_ROLE = env.str("PROXMOX_VM_ROLE", default="PVEVMUser")


# Quotas: the default policy (unless a policy row without a group exists); empty = no limit.
def _quota(name: str, default: int) -> int | None:
    raw = env.str(name, default=str(default)).strip()
    return int(raw) if raw else None


QUOTA_DEFAULT_CONTAINERS = _quota("QUOTA_DEFAULT_CONTAINERS", 5)
QUOTA_DEFAULT_CORES = _quota("QUOTA_DEFAULT_CORES", 8)
QUOTA_DEFAULT_MEMORY_MIB = _quota("QUOTA_DEFAULT_MEMORY_MIB", 8192)
QUOTA_DEFAULT_SWAP_MIB = _quota("QUOTA_DEFAULT_SWAP_MIB", 8192)
QUOTA_DEFAULT_DISK_GIB = _quota("QUOTA_DEFAULT_DISK_GIB", 200)
QUOTA_DEFAULT_CONTAINER_CORES = _quota("QUOTA_DEFAULT_CONTAINER_CORES", 4)
QUOTA_DEFAULT_CONTAINER_MEMORY_MIB = _quota("QUOTA_DEFAULT_CONTAINER_MEMORY_MIB", 8192)
QUOTA_DEFAULT_CONTAINER_SWAP_MIB = _quota("QUOTA_DEFAULT_CONTAINER_SWAP_MIB", 4096)
QUOTA_DEFAULT_CONTAINER_DISK_GIB = _quota("QUOTA_DEFAULT_CONTAINER_DISK_GIB", 64)
# Published on the gateway, besides each container's own name and SSH port.
QUOTA_DEFAULT_ROUTES = _quota("QUOTA_DEFAULT_ROUTES", 50)
QUOTA_DEFAULT_PORTS = _quota("QUOTA_DEFAULT_PORTS", 50)
QUOTA_DEFAULT_CONTAINER_ROUTES = _quota("QUOTA_DEFAULT_CONTAINER_ROUTES", 10)
QUOTA_DEFAULT_CONTAINER_PORTS = _quota("QUOTA_DEFAULT_CONTAINER_PORTS", 10)
QUOTA_EXEMPT_STAFF = env.bool("QUOTA_EXEMPT_STAFF", default=True)

# API tokens (Authorization: Bearer <token>).
API_TOKEN_THROTTLE_RATE = env.str("API_TOKEN_THROTTLE_RATE", default="600/minute")
# Password logins for a token (portalctl login), per client address.
API_LOGIN_THROTTLE_RATE = env.str("API_LOGIN_THROTTLE_RATE", default="10/minute")
# The deploy key of LaunchPad (containers/deploy_key.py): made here on first use.
DEPLOY_KEY_DIR = Path(env.str("DEPLOY_KEY_DIR", default=str(VAR_DIR / "deploy-key")))
# LaunchPad (docs/launchpad.md). A push's source archive waits here for the worker that
# deploys it (web and workers on several hosts share this directory), then is removed.
DEPLOY_SOURCE_DIR = Path(env.str("DEPLOY_SOURCE_DIR", default=str(VAR_DIR / "deploy-sources")))
DEPLOY_SOURCE_MAX_BYTES = env.int("DEPLOY_SOURCE_MAX_BYTES", default=100 * 1024 * 1024)
DEPLOY_PREVIEW_TTL_DAYS = env.int("DEPLOY_PREVIEW_TTL_DAYS", default=7)
DEPLOY_TTL_MAX_DAYS = env.int("DEPLOY_TTL_MAX_DAYS", default=90)
DEPLOY_EXPIRY_WARN_DAYS = env.int("DEPLOY_EXPIRY_WARN_DAYS", default=1)
DEPLOY_DEFAULT_TEMPLATE = env.str("DEPLOY_DEFAULT_TEMPLATE", default="")
DEPLOY_SSH_WAIT_SECONDS = env.float("DEPLOY_SSH_WAIT_SECONDS", default=120.0)
DEPLOY_STEP_TIMEOUT = env.float("DEPLOY_STEP_TIMEOUT", default=1200.0)
DEPLOY_HEALTH_SECONDS = env.float("DEPLOY_HEALTH_SECONDS", default=60.0)
DEPLOY_RELEASES_KEPT = env.int("DEPLOY_RELEASES_KEPT", default=3)
API_TOKEN_LAST_USED_INTERVAL = env.int("API_TOKEN_LAST_USED_INTERVAL", default=60)
API_TOKEN_MAX_PER_USER = env.int("API_TOKEN_MAX_PER_USER", default=50)
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "auth.api.authentication.BearerTokenAuthentication",
    *REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"],
]
REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] = [
    *REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"],
    "auth.api.permissions.TokenScopePermission",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    *REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"],
    "auth.api.throttling.TokenRateThrottle",
]

# Two-factor authentication (TOTP with django-otp; recovery codes).
OTP_REQUIRED_FOR_STAFF = env.bool("OTP_REQUIRED_FOR_STAFF", default=False)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Cluster Portal")
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)
OTP_RECOVERY_CODES = env.int("OTP_RECOVERY_CODES", default=10)
OTP_LOGIN_TIMEOUT = env.int("OTP_LOGIN_TIMEOUT", default=300)

# Brute-force protection (django-axes): lockout per user and address by default.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
_cooloff = env.float("AXES_COOLOFF_MINUTES", default=15.0)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff) if _cooloff > 0 else None
_lockout = env.list("AXES_LOCKOUT_PARAMETERS", default=["username+ip_address"])
AXES_LOCKOUT_PARAMETERS = [p.split("+") if "+" in p else p for p in _lockout]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
AXES_USERNAME_FORM_FIELD = "username"
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0) or None
if AXES_IPWARE_PROXY_COUNT:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

# Audit log.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
# --- notifications (auth/notifications.py) and container expiry (containers/container_expiry.py)
# Mail goes through Django's email backend: the console in the demo and in DEBUG, SMTP
# (EMAIL_HOST, ...) otherwise.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if LAX
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cluster-portal@localhost")
# Health and Prometheus, metrics and alerts, notification delivery, container expiry and
# the retention sweeps: portal/settings_operations.py.
from portal.settings_operations import *  # noqa: E402,F403

# The admin never shows TOTP secrets of existing devices.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

LOGIN_REDIRECT_URL = "/"  # the container list
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- gateway (networking/: NGINX and dnsmasq on the gateway host) ----------------------
# Defaults are loopback and high ports, right for the demo and the tests; a real gateway
# host sets its addresses, certificate paths and reload commands (deploy/gateway.env).
# Empty path settings are derived from GATEWAY_DIR when used. The defaults are written once,
# in portal/gateway_defaults.py.
_gateway = GatewayDefaults()
GATEWAY_DIR = env.str("GATEWAY_DIR", default=str(VAR_DIR / "gateway"))
GATEWAY_NGINX_ENABLED = env.bool("GATEWAY_NGINX_ENABLED", default=True)
GATEWAY_DNSMASQ_ENABLED = env.bool("GATEWAY_DNSMASQ_ENABLED", default=True)
GATEWAY_NGINX_BIN = env.str("GATEWAY_NGINX_BIN", default="nginx")
GATEWAY_DNSMASQ_BIN = env.str("GATEWAY_DNSMASQ_BIN", default="dnsmasq")
GATEWAY_NGINX_STREAM_MODULE = env.str("GATEWAY_NGINX_STREAM_MODULE", default=_gateway.stream_module)
GATEWAY_NGINX_PID_FILE = env.str("GATEWAY_NGINX_PID_FILE", default=_gateway.nginx_pid_file)
GATEWAY_DNSMASQ_PID_FILE = env.str("GATEWAY_DNSMASQ_PID_FILE", default=_gateway.dnsmasq_pid_file)
# Empty: SIGHUP to the PID in the pid file; a restart is TERM and a fresh start.
GATEWAY_NGINX_RELOAD_COMMAND = env.str(
    "GATEWAY_NGINX_RELOAD_COMMAND", default=_gateway.nginx_reload_command
)
GATEWAY_DNSMASQ_RELOAD_COMMAND = env.str(
    "GATEWAY_DNSMASQ_RELOAD_COMMAND", default=_gateway.dnsmasq_reload_command
)
GATEWAY_DNSMASQ_RESTART_COMMAND = env.str(
    "GATEWAY_DNSMASQ_RESTART_COMMAND", default=_gateway.dnsmasq_restart_command
)
# The user nginx's and dnsmasq's workers run as when started as root (`user` in both files);
# empty: their defaults (nobody). The local gateway of the demo and the tests sets the
# invoking user, so that a checkout under a 0700 directory stays readable to them.
GATEWAY_WORKER_USER = env.str("GATEWAY_WORKER_USER", default=_gateway.worker_user)
GATEWAY_HTTP_LISTEN = env.list("GATEWAY_HTTP_LISTEN", default=list(_gateway.http_listen))
GATEWAY_HTTPS_LISTEN = env.list("GATEWAY_HTTPS_LISTEN", default=list(_gateway.https_listen))
# Loopback-only server the apply asks which revision nginx really serves.
GATEWAY_STATUS_LISTEN = env.str("GATEWAY_STATUS_LISTEN", default=_gateway.status_listen)
GATEWAY_STREAM_BIND = env.str("GATEWAY_STREAM_BIND", default=_gateway.stream_bind)
GATEWAY_STREAM_SHARDS = env.int("GATEWAY_STREAM_SHARDS", default=_gateway.stream_shards)
GATEWAY_PUBLIC_HTTPS_PORT = env.int("GATEWAY_PUBLIC_HTTPS_PORT", default=_gateway.public_https_port)
GATEWAY_DNS_LISTEN = env.list("GATEWAY_DNS_LISTEN", default=list(_gateway.dns_listen))
GATEWAY_DNS_PORT = env.int("GATEWAY_DNS_PORT", default=_gateway.dns_port)
GATEWAY_DHCP_ENABLED = env.bool("GATEWAY_DHCP_ENABLED", default=_gateway.dhcp_enabled)
GATEWAY_DHCP_LEASE = env.str("GATEWAY_DHCP_LEASE", default=_gateway.dhcp_lease)
# `{domain}` is replaced by the site's domain (one wildcard certificate per site).
GATEWAY_TLS_CERTIFICATE = env.str("GATEWAY_TLS_CERTIFICATE", default=_gateway.tls_certificate)
GATEWAY_TLS_CERTIFICATE_KEY = env.str(
    "GATEWAY_TLS_CERTIFICATE_KEY", default=_gateway.tls_certificate_key
)
GATEWAY_ACME_DIR = env.str("GATEWAY_ACME_DIR", default=_gateway.acme_dir)
GATEWAY_AUTH_URL = env.str("GATEWAY_AUTH_URL", default=_gateway.auth_url)
GATEWAY_PORTAL_URL = env.str("GATEWAY_PORTAL_URL", default=_gateway.portal_url)
GATEWAY_PORTAL_NAME = env.str("GATEWAY_PORTAL_NAME", default=_gateway.portal_name)
GATEWAY_CLIENT_MAX_BODY_SIZE = env.str(
    "GATEWAY_CLIENT_MAX_BODY_SIZE", default=_gateway.client_max_body_size
)
GATEWAY_PROXY_TIMEOUT = env.int("GATEWAY_PROXY_TIMEOUT", default=_gateway.proxy_timeout)
GATEWAY_STREAM_TIMEOUT = env.int("GATEWAY_STREAM_TIMEOUT", default=_gateway.stream_timeout)
# An apply starts once no change has arrived for this long (but waits at most the max).
GATEWAY_COALESCE_SECONDS = env.float("GATEWAY_COALESCE_SECONDS", default=0.2)
GATEWAY_COALESCE_MAX_SECONDS = env.float("GATEWAY_COALESCE_MAX_SECONDS", default=2.0)
# Create and delete jobs wait (up to GATEWAY_APPLY_TIMEOUT) for the apply that covers them;
# off, they only ask for it (a job runner with no gateway worker, e.g. in-process tests).
GATEWAY_JOB_WAIT = env.bool("GATEWAY_JOB_WAIT", default=True)
GATEWAY_APPLY_TIMEOUT = env.float("GATEWAY_APPLY_TIMEOUT", default=120.0)
GATEWAY_RELOAD_TIMEOUT = env.float("GATEWAY_RELOAD_TIMEOUT", default=10.0)
GATEWAY_KEEP_RELEASES = env.int("GATEWAY_KEEP_RELEASES", default=5)
# Protected routes: the gateway's own credential, a host-only cookie per route host, minted
# by the portal after login (auth/gateway_access.py). The portal's session never leaves its host.
GATEWAY_CREDENTIAL_COOKIE = _gateway.credential_cookie
GATEWAY_CREDENTIAL_IDLE_SECONDS = env.int("GATEWAY_CREDENTIAL_IDLE_SECONDS", default=3600)
GATEWAY_CREDENTIAL_MAX_SECONDS = env.int("GATEWAY_CREDENTIAL_MAX_SECONDS", default=12 * 3600)
GATEWAY_CODE_SECONDS = env.int("GATEWAY_CODE_SECONDS", default=60)
