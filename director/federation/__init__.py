"""Pelican's registry and federation issuer, served by this director (reference
``pelican-trust.md``): namespace registration with key possession and approval
(``registry``), verified advertisements (``advertise``), the issuer's keys and tokens
(``issuer``), and their HTTP routes (``api``, ``views``).

The protocol's rules live in the plain core ``director.trust``; these modules store and
read what it checks, in the tables of ``director.models.registrations``.
"""
