"""URL map. Order matters: the last pattern is Pelican's root-path shortcut, which sends
any unmatched GET/HEAD to a cache redirect (``GET /foo/bar.txt`` = the object endpoint)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from director import views
from director.federation import views as federation_views
from director_project.api import api

handler400 = "director.views.bad_request"
handler500 = "director.views.server_error"

urlpatterns = [
    re_path(r"^api/v1\.0/director/object(?P<path>/.*)?$", views.object_redirect),
    re_path(r"^api/v1\.0/director/origin(?P<path>/.*)?$", views.origin_redirect),
    re_path(r"^api/v1\.0/director/healthTest(?P<path>/.*)?$", views.health_test_file),
    path("api/", api.urls),
    path("metrics", views.metrics),
    path(".well-known/pelican-configuration", views.pelican_configuration),
    path(".well-known/issuer.jwks", federation_views.issuer_jwks),
    path(".well-known/openid-configuration", federation_views.openid_configuration),
    path("admin/", admin.site.urls),
    path("view/", include("director.console.urls")),
    path("view", RedirectView.as_view(url="/view/")),
    # Admin assets straight from the app directories (no collectstatic step to forget).
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
    re_path(r"^(?P<path>.*)$", views.root_shortcut),
]
