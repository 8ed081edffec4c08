#!/bin/bash
# Run through SSM by deploy_app (the stack's migration document) before any instance switches:
# `shop-migrate VERSION BUNDLE` installs that release beside the running one, runs its migrations as the master
# user, then creates or updates the application's own role from its secret. The app never holds the master secret.
set -euo pipefail

root="${SHOP_ROOT:-}"
version="${1:?usage: shop-migrate VERSION BUNDLE}"
bundle="${2:?usage: shop-migrate VERSION BUNDLE}"
"$root/usr/local/sbin/shop-release" install "$version" "$bundle"
set -a
# shellcheck source=/dev/null
. "$root/etc/shop/app.env"
# shellcheck source=/dev/null
. "$root/etc/shop/migrate.env"
set +a
cd "$root/opt/shop/releases/$version"
DB_SECRET_ARN="$DB_MASTER_SECRET_ARN" SHOP_VERSION="$version" ./venv/bin/python manage.py migrate --noinput
./venv/bin/python "$root/usr/local/sbin/shop-db-role"
