from django.apps import AppConfig


class OpsinfraConfig(AppConfig):
    name = "opsinfra"
    default_auto_field = "django.db.models.BigAutoField"
