"""The Django admin: the operator's registry of servers, namespaces, tokens and settings.

Importing the package registers every model admin (Django's autodiscovery imports it).
"""

from director.admin import director_settings, registrations, servers, tokens

__all__ = ["director_settings", "registrations", "servers", "tokens"]
