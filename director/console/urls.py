"""``/view/...``: the console's pages (their JSON is under ``/api/v1.0/console/``)."""

from __future__ import annotations

from django.urls import path

from director.console import views

urlpatterns = [
    path("", views.overview, name="console-overview"),
    path("servers/", views.servers, name="console-servers"),
    path("servers/<str:name>/", views.server, name="console-server"),
    path("map/", views.world_map, name="console-map"),
    path("namespaces/", views.namespaces, name="console-namespaces"),
    path("why/", views.why, name="console-why"),
]
