"""The chaos suite: the real system as processes (tests/support/system.py), driven over REST while faults hit it.

Its parts: ``tests/support/brokers.py`` (brokers of its own to stop and restart
empty), ``tests/support/system.py`` (broker, workers, beat, relay, web),
``tests/support/rest.py`` (a retrying, recording REST client) and
``tests/support/database.py`` (dropping one role's database connections).
"""
