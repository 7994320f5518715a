"""The operator console at ``/view/``: the federation at a glance.

- ``rows``: what the pages show, gathered cheaply (one ``values_list`` query of the
  servers, the stat engine's pool states, the routing snapshot, this process's rings);
- ``schemas`` + ``api``: the JSON the pages poll (``/api/v1.0/console/...``), also read by
  ``manage.py explain --director`` and ``statpools``;
- ``views`` + ``urls``: the HTML pages (templates under ``templates/console/``, script and
  style under ``director/static/director/console/``: nothing is loaded from elsewhere);
- ``worldmap``: the land outline drawn as SVG from a TopoJSON file shipped here.
"""
