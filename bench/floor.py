"""The floor: the cheapest response Django can give, to measure the shop against.

One file, no middleware, no apps; its one view returns the bytes of the shop's product list (saved by the bench
runner to the file named by BENCH_FLOOR_BODY). Served by the same gunicorn with the same shop/gunicorn.conf.py:

    BENCH_FLOOR_BODY=products.json gunicorn --config shop/gunicorn.conf.py bench.floor:application
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

BODY = Path(os.environ["BENCH_FLOOR_BODY"]).read_bytes()


def product_list(request):
    return HttpResponse(BODY, content_type="application/json")


urlpatterns = [path("api/products", product_list)]

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_urlsafe(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    USE_I18N=False,
)
application = get_wsgi_application()
