from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from shop import health

urlpatterns = [
    path("health/ready", health.ready, name="health-ready"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("checkout.urls")),
    path("", include("catalog.urls")),
]
if settings.ADMIN_ENABLED:
    urlpatterns.append(path(settings.ADMIN_PATH, admin.site.urls))

# Under /api/ these answer JSON {"code", "detail"} (shop.exceptions); pages keep Django's.
handler400 = "shop.exceptions.bad_request"
handler403 = "shop.exceptions.permission_denied"
handler404 = "shop.exceptions.page_not_found"
handler500 = "shop.exceptions.server_error"
