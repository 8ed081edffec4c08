"""Create or update the application's database role from its secret, as the master user (run by shop-migrate).

timezone and statement_timeout are set on the role: behind RDS Proxy a SET pins the session and a startup
`options` parameter is rejected. The password never appears in a statement log (log_statement stays off).
"""

import json
import os
from urllib.parse import urlparse

import boto3
import psycopg
from psycopg import sql

STATEMENT_TIMEOUT = "5s"


def read_secret(arn):
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def main():
    master = read_secret(os.environ["DB_MASTER_SECRET_ARN"])
    app = read_secret(os.environ["DB_APP_SECRET_ARN"])
    url = urlparse(os.environ["DATABASE_URL"])
    role = sql.Identifier(app["username"])
    with psycopg.connect(
        host=url.hostname,
        port=url.port or 5432,
        dbname=url.path.lstrip("/"),
        user=master["username"],
        password=master["password"],
        sslmode="require",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app["username"]]).fetchone()
        verb = sql.SQL("ALTER" if exists else "CREATE")
        conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, role, sql.Literal(app["password"])))
        conn.execute(sql.SQL("ALTER ROLE {} SET timezone = 'UTC'").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, sql.Literal(STATEMENT_TIMEOUT)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
    print(f"shop-db-role: role {app['username']} ready")


if __name__ == "__main__":
    main()
