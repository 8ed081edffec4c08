"""Create or update the application's database roles from its secret, as the master user (run by shop-migrate on
the migration instance, the only one whose role reads the master secret).

timezone and statement_timeout are set on the role: behind RDS Proxy a SET pins the session and a startup
`options` parameter is rejected. The password never appears in a statement log (log_statement stays off).

The secret rotates multi-user: the rotation function alternates it between shop_app and shop_app_clone, creating
the clone as a member of shop_app when it is missing. Role settings are not inherited through membership, so the
clone is made here, with the same settings and a password nobody knows until the function sets one.
"""

import json
import os
import secrets
from urllib.parse import urlparse

import boto3
import psycopg
from psycopg import sql

STATEMENT_TIMEOUT = "5s"
CLONE_SUFFIX = "_clone"  # the name the multi-user rotation function gives the second user


def read_secret(arn):
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def roles_ensure(conn, *, username: str, password: str) -> None:
    """The app's role and its clone: both log in, carry the settings; the secret's user has the secret's password;
    privileges go to the base role, which the clone is a member of."""
    base = username.removesuffix(CLONE_SUFFIX)
    for name in (base, base + CLONE_SUFFIX):
        role = sql.Identifier(name)
        known = password if name == username else secrets.token_urlsafe(32)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(known)))
        elif name == username:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(known)))
        conn.execute(sql.SQL("ALTER ROLE {} SET timezone = 'UTC'").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, sql.Literal(STATEMENT_TIMEOUT)))
    base_role, clone_role = sql.Identifier(base), sql.Identifier(base + CLONE_SUFFIX)
    conn.execute(sql.SQL("GRANT {} TO {}").format(base_role, clone_role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(base_role))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(base_role))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(base_role))


def main():
    master = read_secret(os.environ["DB_MASTER_SECRET_ARN"])
    app = read_secret(os.environ["DB_APP_SECRET_ARN"])
    url = urlparse(os.environ["DATABASE_URL"])
    with psycopg.connect(
        host=url.hostname,
        port=url.port or 5432,
        dbname=url.path.lstrip("/"),
        user=master["username"],
        password=master["password"],
        sslmode="require",
        autocommit=True,
    ) as conn:
        roles_ensure(conn, username=app["username"], password=app["password"])
    print(f"shop-db-role: role {app['username']} ready")


if __name__ == "__main__":
    main()
