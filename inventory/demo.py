"""The demo catalogue: a believable shop's products and their opening stock, for a developer's machine and the
benchmarks (``manage.py seed_demo``, ``bench.harness.seed_shop``)."""

from decimal import Decimal

from .services import product_ensure

# sku, name, price (EUR), units on hand: from pocket money to a month's rent,
# with one SKU that never runs out and one that runs out after five orders.
CATALOGUE = [
    ("PEN-BLUE", "Blue ballpoint pen", "1.20", 10_000),
    ("NOTEBOOK-A5", "A5 notebook, dotted", "6.50", 500),
    ("MUG-CERAMIC", "Ceramic mug, 350 ml", "12.90", 120),
    ("LAMP-DESK", "LED desk lamp", "39.00", 60),
    ("KEYBOARD-MECH", "Mechanical keyboard", "119.00", 40),
    ("HEADPHONES-NC", "Noise-cancelling headphones", "249.00", 25),
    ("CHAIR-ERGO", "Ergonomic office chair", "489.00", 12),
    ("LAPTOP-14", "14-inch laptop", "1299.00", 5),
]


def seed_catalogue() -> None:
    """The demo catalogue and its opening stock, and nothing else (no user). Idempotent."""
    for sku, name, price, on_hand in CATALOGUE:
        # Through the service: the opening units are received into the SKU's stock stream
        # (inventory.StockReceived); an existing product is left alone, so a second run receives nothing.
        product_ensure(sku=sku, name=name, price=Decimal(price), currency="EUR", on_hand=on_hand)
