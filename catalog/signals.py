"""Any saved or deleted product, whoever wrote it (admin, shell, a service), invalidates the product cache."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog import cache
from catalog.models import Product


@receiver(post_save, sender=Product, dispatch_uid="catalog.product_saved")
@receiver(post_delete, sender=Product, dispatch_uid="catalog.product_deleted")
def product_changed(sender, **kwargs) -> None:
    cache.invalidate()
