"""Start-up checks of the inventory context's settings."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def snapshot_interval(app_configs, **kwargs) -> list[Error]:
    every = getattr(settings, "INVENTORY_SNAPSHOT_EVERY", None)
    if isinstance(every, int) and every >= 1:
        return []
    return [
        Error(
            f"INVENTORY_SNAPSHOT_EVERY is {every!r}: it must be a whole number of events, 1 or more.",
            hint="Set the INVENTORY_SNAPSHOT_EVERY environment variable, e.g. to 50.",
            id="inventory.E001",
        )
    ]
