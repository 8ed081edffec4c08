from django.apps import AppConfig


class OpsinfraConfig(AppConfig):
    name = "opsinfra"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from opsinfra import checks  # noqa: F401 - registers the system checks
