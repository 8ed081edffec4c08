from django.core.management.base import BaseCommand, CommandError

from checkout.services import expired_cleanup


class Command(BaseCommand):
    help = (
        "Delete expired cart holds, shopper sessions and idempotency records, in batches; safe while the shop serves."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Rows per DELETE statement (default 1000).")

    def handle(self, *args, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        result = expired_cleanup(batch_size=batch_size, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {result.sessions} expired session(s), {result.idempotency_records} idempotency record(s) "
                f"and {result.holds} cart hold(s)."
            )
        )
