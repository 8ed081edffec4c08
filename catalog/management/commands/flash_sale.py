from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from catalog import gate
from catalog.exceptions import InvalidQuantity, ProductNotFound
from catalog.models import Product
from catalog.services import flash_sale_end, flash_sale_start


class Command(BaseCommand):
    help = (
        "Put a product on flash sale from a start time (its units counted down in the Redis gate), take it off sale, "
        "or rebuild the gate from PostgreSQL."
    )

    def add_arguments(self, parser):
        parser.add_argument("product_id", nargs="?", type=int, help="The product to put on sale or take off sale.")
        parser.add_argument(
            "--starts-at",
            help="ISO 8601 start, e.g. 2026-11-27T06:00:00Z (default: now). Nothing of it sells before then.",
        )
        parser.add_argument("--max-per-session", type=int, help="Units one shopper session may buy in all.")
        parser.add_argument("--end", action="store_true", help="Take the product off sale (and its limit off).")
        parser.add_argument(
            "--rebuild", action="store_true", help="Rebuild the whole gate from PostgreSQL (after Redis lost it)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would change; change nothing.")

    def handle(self, *args, product_id, starts_at, max_per_session, end, rebuild, dry_run, verbosity, **options):
        if rebuild:
            if product_id is not None or end or starts_at or max_per_session is not None:
                raise CommandError("--rebuild takes no product and no other option.")
            self._rebuild(dry_run=dry_run, verbosity=verbosity)
            return
        if product_id is None:
            raise CommandError("Name a product id, or pass --rebuild.")
        if end and (starts_at or max_per_session is not None):
            raise CommandError("--end takes no --starts-at or --max-per-session.")
        start = _parse_start(starts_at)
        if dry_run:
            if not Product.objects.filter(pk=product_id).exists():
                raise CommandError(f"No product with id {product_id}.")
            what = "take off sale" if end else f"put on sale from {start.isoformat()}"
            self.stdout.write(f"Would {what} product {product_id}.")
            return
        try:
            if end:
                flash_sale_end(product_id=product_id)
            else:
                flash_sale_start(product_id=product_id, starts_at=start, max_per_session=max_per_session)
        except (ProductNotFound, InvalidQuantity) as exc:
            raise CommandError(exc.detail) from exc
        units = (gate.gate_units() or {}).get(product_id)
        if end:
            self.stdout.write(self.style.SUCCESS(f"Product {product_id} is off sale."))
            return
        limit = "no per-session limit" if max_per_session is None else f"at most {max_per_session} per session"
        in_gate = (
            "not in the gate (Redis unavailable; PostgreSQL sells it)" if units is None else f"{units} in the gate"
        )
        self.stdout.write(
            self.style.SUCCESS(f"Product {product_id} on sale from {start.isoformat()}: {in_gate}, {limit}.")
        )

    def _rebuild(self, *, dry_run: bool, verbosity: int) -> None:
        if dry_run:
            sales = gate.sellable_units()
            self.stdout.write(f"Would rebuild the gate with {len(sales)} product(s) on sale.")
            return
        product_ids = gate.gate_rebuild(wait=True)
        if product_ids is None:
            raise CommandError("The gate was not rebuilt: Redis did not answer, or another rebuild held the lock.")
        self.stdout.write(self.style.SUCCESS(f"Gate rebuilt with {len(product_ids)} product(s) on sale."))
        if verbosity > 1:
            for product_id, units in sorted((gate.gate_units() or {}).items()):
                self.stdout.write(f"  product {product_id}: {units} unit(s)")


def _parse_start(value: str | None) -> datetime:
    if value is None:
        return timezone.now()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--starts-at must be an ISO 8601 time, got {value!r}.") from exc
    if timezone.is_naive(parsed):
        raise CommandError("--starts-at needs a time zone, e.g. 2026-11-27T06:00:00Z.")
    return parsed
