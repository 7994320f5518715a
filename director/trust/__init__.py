"""Pelican's trust protocol in plain Python (reference ``pelican-trust.md``): keys and
their JSON form, WLCG tokens, the registry's key-possession challenge and prefix rules.

No Django here: the registry service (``director.federation``) stores what these
functions check. Signatures are made and checked by ``cryptography`` and PyJWT only.
"""
