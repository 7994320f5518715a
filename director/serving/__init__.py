"""The serving machinery below the domain: the WSGI server and its TLS, load shedding, the
database's budget and deadline, the loop monitor, the owner of background loops
(``supervisor``), the answer counters and log hygiene.

Nothing here imports the registry, routing or any other domain module: the domain and the
process's background services (``director.ops``) are built on top of it."""
