import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Import every view and compile the storefront template once, before gunicorn forks its workers.

    Otherwise each worker's first request pays 0.3-0.5 s for it. Nothing here opens a database or Redis
    connection, which must not be shared across the fork.
    """
    from django.template.loader import get_template
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - evaluated for its side effect: every URL module imported
    get_template("catalog/storefront.html")


_warm_up()
