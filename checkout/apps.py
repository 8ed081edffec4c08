from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "checkout"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from checkout.ratelimit import ratelimit_settings_check

        # A mistyped limit stops the process at start with one line, not the first checkout with a 500.
        ratelimit_settings_check()
