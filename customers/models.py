"""What the customers context keeps: a record of each customer forgotten, without their personal data."""

from django.conf import settings
from django.db import models


class CustomerForgetting(models.Model):
    """One customer's personal data erased: when, and by which staff member (none: from the command line)."""

    customer_id = models.BigIntegerField(unique=True)
    forgotten_at = models.DateTimeField(auto_now_add=True)
    forgotten_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-forgotten_at"]
        permissions = [("forget_customer", "Can forget a customer (erase their personal data)")]

    def __str__(self) -> str:
        return f"customer {self.customer_id}, forgotten {self.forgotten_at:%Y-%m-%d %H:%M}"
