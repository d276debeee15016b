"""Create the PostgreSQL database DATABASE_URL names, if it is missing (``scripts/run_prod.sh``).

It connects to the server's ``postgres`` database with the same user, host and port.
"""

import os
import sys

import environ
import psycopg
from psycopg import sql


def main() -> int:
    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if "postgresql" not in config["ENGINE"]:
        print(f"run-prod: DATABASE_URL must name a PostgreSQL database, not {config['ENGINE']}", file=sys.stderr)
        return 2
    server = {
        "dbname": "postgres",
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "connect_timeout": 5,
        "autocommit": True,
    }
    try:
        with psycopg.connect(**server) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
                print(f"run-prod: created the database {config['NAME']}")
    except psycopg.OperationalError as exc:
        print(
            f"run-prod: PostgreSQL does not answer at {config.get('HOST')}:{config.get('PORT')}: {exc}", file=sys.stderr
        )
        print("  start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
