"""pytest plugin that monkey-patches with gevent before pytest-django sets Django up.

Loaded with ``-p director_project.gevent_pytest`` (see pyproject.toml). A conftest.py is too
late: pytest-django has configured Django by the time conftest files are imported.
"""

from gevent import monkey

monkey.patch_all()
