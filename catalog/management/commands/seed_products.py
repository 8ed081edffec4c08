from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.models import Product
from catalog.seeding import MAX_PRODUCTS, SeedError, products_seed
from checkout.services import session_tokens_write


class Command(BaseCommand):
    help = "Load a realistic catalogue: products across 20 categories with 50-500 units each. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--products", type=int, default=100, help=f"How many products (default 100, at most {MAX_PRODUCTS:,})."
        )
        parser.add_argument("--seed", type=int, help="Seed for the random stock levels, for reproducible runs.")
        parser.add_argument("--reset", action="store_true", help="Delete the whole catalogue first.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Seed only a catalogue with no product (what `make serve` runs)."
        )
        parser.add_argument(
            "--sessions", type=int, default=0, help="Also create N shopper sessions for load tests (tokens to a file)."
        )
        parser.add_argument(
            "--sessions-file",
            default=str(settings.STATE_DIR / "session_tokens.txt"),
            help="Where --sessions writes the tokens, one per line (default .shop/session_tokens.txt).",
        )

    def handle(self, *args, products, seed, reset, if_empty, sessions, sessions_file, verbosity, **options):
        if sessions < 0:
            raise CommandError("--sessions must be 0 or more.")
        if if_empty and reset:
            raise CommandError("--if-empty and --reset contradict each other: give one.")
        if if_empty and Product.objects.exists():
            self.stdout.write("The catalogue has products: nothing seeded (--if-empty).")
            return
        progress = self._progress if verbosity > 0 and self.stdout.isatty() else None
        try:
            result = products_seed(count=products, reset=reset, seed=seed, progress=progress)
        except SeedError as exc:
            raise CommandError(exc.detail) from exc
        if progress:
            self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(result.summary()))
        if sessions:
            path = session_tokens_write(count=sessions, path=Path(sessions_file))
            self.stdout.write(self.style.SUCCESS(f"{sessions:,} shopper session(s), tokens in {path}"))

    def _progress(self, done: int, total: int) -> None:
        self.stdout.write(f"\r  {done:,}/{total:,} products", ending="")
        self.stdout.flush()
