"""Rebuild the stock projection and its snapshots by replaying each SKU's stream from the event log."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from inventory.models import Product
from inventory.selectors import stock_replayed
from inventory.services import UnknownSku, stock_rebuild


class Command(BaseCommand):
    help = (
        "Replay each SKU's stock events from the outbox log into its StockItem (the projection) and "
        "recreate its snapshots. Each SKU is rebuilt in its own transaction, with its stock row locked."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("skus", nargs="*", help="Only these SKUs (default: every product).")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing: report each SKU whose projection differs from its log, and fail if any does.",
        )

    def handle(self, *args, skus: list[str], check: bool, **options) -> None:
        skus = skus or list(Product.objects.order_by("sku").values_list("sku", flat=True))
        _refuse_unknown(skus)
        if check:
            return self._check(skus)
        changed, failed = 0, []
        for sku in skus:
            try:
                rebuilt = stock_rebuild(sku=sku)
            except (UnknownSku, DatabaseError) as exc:
                failed.append(sku)
                self.stderr.write(f"  {sku}: not rebuilt: {exc}")
                continue
            if rebuilt.changed:
                changed += 1
                before, after = rebuilt.before, rebuilt.after
                self.stdout.write(
                    f"  {sku}: on hand {before.on_hand} -> {after.on_hand}, reserved {before.reserved} -> "
                    f"{after.reserved}, events {before.version} -> {after.version}"
                )
        rebuilt_count = len(skus) - len(failed)
        self.stdout.write(f"Rebuilt {rebuilt_count} stock items from the log; {changed} differed and were corrected.")
        if failed:
            raise CommandError(f"{len(failed)} SKUs could not be rebuilt: {', '.join(failed)}")

    def _check(self, skus: list[str]) -> None:
        drifted = []
        for sku in skus:
            product = Product.objects.select_related("stock").filter(sku=sku).first()
            if product is None:
                raise CommandError(f"No product has SKU {sku!r}.")
            state, _ = stock_replayed(sku=sku)
            item = getattr(product, "stock", None)
            shown = (item.on_hand, item.reserved, item.version) if item else None
            if shown != (state.on_hand, state.reserved, state.version):
                drifted.append(sku)
                self.stdout.write(f"  {sku}: projection {shown}, log {(state.on_hand, state.reserved, state.version)}")
        self.stdout.write(f"Checked {len(skus)} stock items against the log; {len(drifted)} differ.")
        if drifted:
            raise CommandError("The projection differs from the log: run `python manage.py inventory_rebuild`.")


def _refuse_unknown(skus: list[str]) -> None:
    """Before any SKU is rebuilt or checked: a typo stops the command, not half of its work."""
    known = set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))
    unknown = [sku for sku in skus if sku not in known]
    if unknown:
        named = ", ".join(repr(sku) for sku in unknown)
        raise CommandError(f"No product has SKU {named}: nothing was rebuilt or checked.", returncode=2)
