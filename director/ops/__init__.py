"""The process's background services, above the domain: the health verdict, metrics, health
tests, the registry watcher, the directors' own ads, ``followers`` (what follows the
settings) and ``runtime``, what each entry point starts. The serving machinery they stand
on is ``director.serving``."""
