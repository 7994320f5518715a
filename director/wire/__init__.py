"""Pelican's wire formats, with no Django: what the director reads and writes byte for byte.

``types`` (capabilities, kinds, statuses, token metadata), ``paths`` (cleaning and Go's
escaping), ``headers`` (the redirect headers), ``ads`` (the advertisement schemas),
``tokens`` (client JWTs), ``versions`` (User-Agent gates), ``validation`` (values that go
into headers and columns), ``healthfiles`` (the health-test objects), ``documents`` (the
JSON documents of the debug body and discovery).
"""
