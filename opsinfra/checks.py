"""`manage.py check` for the stack settings: the connection budget of each environment. No troposphere here."""

from django.conf import settings
from django.core.checks import Warning, register

from opsinfra.capacity import DB_INSTANCE_MEMORY_GIB, connection_budget


@register("opsinfra")
def check_connection_budget(app_configs=None, **kwargs):
    """Warn when ASG max x gunicorn workers x threads outgrows the connections RDS Proxy may open."""
    warnings = []
    for env, preset in settings.OPSINFRA.get("ENVIRONMENTS", {}).items():
        instance_class = preset["db_instance_class"]
        if instance_class not in DB_INSTANCE_MEMORY_GIB:
            warnings.append(
                Warning(
                    f"OPSINFRA {env}: unknown database instance class {instance_class}, so its connection budget "
                    "cannot be checked.",
                    hint="Add its memory to opsinfra.capacity.DB_INSTANCE_MEMORY_GIB.",
                    id="opsinfra.W002",
                )
            )
            continue
        budget = connection_budget(
            instances=preset["asg_max"],
            workers=preset["gunicorn_workers"],
            threads=preset["gunicorn_threads"],
            instance_class=instance_class,
            proxy_max_connections_percent=preset["proxy_max_connections_percent"],
        )
        if budget.exceeded:
            warnings.append(
                Warning(
                    f"OPSINFRA {env}: {budget.instances} instances x {budget.workers} gunicorn workers x "
                    f"{budget.threads} threads = {budget.client_connections} database clients, more than the "
                    f"{budget.proxy_connections} connections RDS Proxy may open on {instance_class} "
                    f"(max_connections {budget.max_connections} x {budget.proxy_max_connections_percent} %).",
                    hint="Lower asg_max, gunicorn_workers or gunicorn_threads, or choose a larger db_instance_class.",
                    id="opsinfra.W001",
                )
            )
    return warnings
