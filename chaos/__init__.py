"""The chaos suite: faults against the real shop (gunicorn, PostgreSQL, Redis) and the table of what held."""
