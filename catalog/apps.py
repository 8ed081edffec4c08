from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog import signals  # noqa: F401 - connects the cache invalidation receivers
        from catalog.closing import skip_closing_caches_that_close_nothing

        skip_closing_caches_that_close_nothing()
