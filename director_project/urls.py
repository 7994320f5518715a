"""URL map: the rows of ``director_project.routes`` that have a view, in its order. The
last pattern is Pelican's root-path shortcut, which sends any unmatched GET/HEAD to a
cache redirect (``GET /foo/bar.txt`` = the object endpoint)."""

from __future__ import annotations

from director_project import routes

handler400 = "director.views.bad_request"
handler500 = "director.views.server_error"

urlpatterns = routes.urlpatterns()
