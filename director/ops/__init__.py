"""Running the director: health, metrics, the loop monitor, health tests, the WSGI server
and the per-process background work that the entry points start."""
