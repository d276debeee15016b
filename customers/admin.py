"""Admin for customers: "Forget these customers" on the users list, and the record of who was forgotten."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from outbox.admin import ReadOnlyAdmin

from .models import CustomerForgetting
from .services import ForgetRefused, customer_forget

User = get_user_model()


class ForgettingUserAdmin(UserAdmin):
    actions = ["forget_customers"]

    @admin.action(description="Forget the selected customers (erase their personal data)", permissions=["forget"])
    def forget_customers(self, request: HttpRequest, queryset: QuerySet) -> None:
        forgotten = 0
        for customer_id in queryset.values_list("pk", flat=True):
            try:
                customer_forget(customer_id=customer_id, by=request.user)
            except ForgetRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                forgotten += 1
        if forgotten:
            self.message_user(request, f"{forgotten} customer(s) forgotten: each context is erasing their data.")

    def has_forget_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("customers.forget_customer")


admin.site.unregister(User)
admin.site.register(User, ForgettingUserAdmin)


@admin.register(CustomerForgetting)
class CustomerForgettingAdmin(ReadOnlyAdmin):
    list_display = ("customer_id", "forgotten_at", "forgotten_by")
    search_fields = ("=customer_id",)
