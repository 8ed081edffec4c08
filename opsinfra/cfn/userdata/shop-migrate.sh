#!/bin/bash
# Run through SSM by deploy_app (the stack's migration document): migrations as the master user, then the
# application's own role is created or updated from its secret. The app itself never holds the master secret.
set -euo pipefail

root="${SHOP_ROOT:-}"
set -a
# shellcheck source=/dev/null
. "$root/etc/shop/app.env"
# shellcheck source=/dev/null
. "$root/etc/shop/release.env"
# shellcheck source=/dev/null
. "$root/etc/shop/migrate.env"
set +a
cd "$root/opt/shop/current"
DB_SECRET_ARN="$DB_MASTER_SECRET_ARN" ./venv/bin/python manage.py migrate --noinput
./venv/bin/python "$root/usr/local/sbin/shop-db-role"
