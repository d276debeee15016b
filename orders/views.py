"""The shop's order pages: the order form, a customer's orders, and one order as it goes along.

Each view parses a form or a URL, calls one orders service or selector, and
renders; who may confirm or cancel is the services' to decide (their refusal
is a 403 with their message). An order the signed-in person may not see (another customer's) is
a 404, the same as one that does not exist. Staff see another's order with
``orders.view_order`` and cancel it with ``orders.change_order``, the
permissions the admin asks for; staff status alone is a customer's view.
"""

from collections import Counter
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from config.api.throttling import OrderPlaceThrottle, seconds_to_wait

from . import selectors, services
from .catalogue import catalogue
from .forms import CancelForm, OrderForm, OrderLineFormSet
from .models import InvalidOrder, InvalidOrderTransition, Order, OrderForbidden
from .selectors import InventoryStatus, PaymentStatus

REFRESH_SECONDS = 2  # how often an order page in flight refreshes itself (until the order is final)
ORDERS_PER_PAGE = 20  # "Your orders", a page


@login_required
@require_safe
def order_list(request: HttpRequest) -> HttpResponse:
    """The signed-in customer's own orders, newest first, ``ORDERS_PER_PAGE`` a page (``?page=``).

    A page that is not a number is the first; one past the end, the last.
    """
    orders = selectors.orders_of_customer(customer_id=request.user.pk)  # type: ignore[arg-type]  # login_required
    page = Paginator(orders, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "orders/order_list.html", {"orders": page.object_list, "page": page})


@login_required
def order_new(request: HttpRequest) -> HttpResponse:
    products = catalogue().products()
    wait = None
    if request.method == "POST":
        form = OrderForm(request.POST)
        lines = OrderLineFormSet(request.POST, form_kwargs={"products": products}, prefix="lines")
        wait = seconds_to_wait(OrderPlaceThrottle(), request)  # ORDER_PLACE_RATE, shared with the API
        if wait is not None:
            form.add_error(None, f"You have placed many orders in a short time: try again in {wait} seconds.")
        elif form.is_valid() and lines.is_valid():
            try:
                order = services.order_place(
                    customer_id=request.user.pk,  # type: ignore[arg-type]  # login_required: signed in
                    lines=lines.requested(),
                    shipping_address=form.shipping_address(),
                    payment_token=form.cleaned_data["payment_token"],
                )
            except InvalidOrder as exc:
                form.show_refusal(exc, lines)
            else:
                messages.success(request, "Your order is placed as a draft: check it, then confirm it.")
                return redirect("orders:detail", order_id=order.id)
    else:
        form = OrderForm(initial={"name": request.user.get_full_name()})  # type: ignore[union-attr]  # login_required
        chosen = request.GET.get("sku", "")
        initial = [{"sku": chosen, "quantity": 1}] if chosen else []
        lines = OrderLineFormSet(initial=initial, form_kwargs={"products": products}, prefix="lines")
    context = {"form": form, "lines": lines, "has_products": bool(products)}
    response = render(request, "orders/order_form.html", context, status=400 if request.method == "POST" else 200)
    if wait is not None:  # over the limit: nothing was placed, come back later
        response.status_code = 429
        response["Retry-After"] = str(wait)
    return response


@login_required
@require_safe
def order_detail(request: HttpRequest, order_id: UUID) -> HttpResponse:
    order = _visible_order(request, order_id)
    return render(request, "orders/order_detail.html", _order_page(request, order))


@login_required
@require_safe
def order_live(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The live part of the order page alone, for the page's script to swap in."""
    order = _visible_order(request, order_id)
    return render(request, "orders/_order_live.html", _order_page(request, order))


@login_required
@require_POST
def order_confirm(request: HttpRequest, order_id: UUID) -> HttpResponse:
    order = _visible_order(request, order_id)
    try:
        order = services.order_confirm(order_id=order.id, by_user_id=request.user.pk)
    except OrderForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    except InvalidOrderTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _confirmed(order))
    return redirect("orders:detail", order_id=order.id)


@login_required
@require_POST
def order_cancel(request: HttpRequest, order_id: UUID) -> HttpResponse:
    order = _visible_order(request, order_id)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return render(request, "orders/order_detail.html", _order_page(request, order, cancel_form=form), status=400)
    try:
        services.order_cancel(order_id=order.id, reason=form.cleaned_data["reason"], by_user_id=request.user.pk)
    except OrderForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    except InvalidOrderTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancelled. Anything paid is refunded and anything reserved released.")
    return redirect("orders:detail", order_id=order.id)


def _confirmed(order: Order) -> str:
    """What the confirm button says; pressed again (a double click, a resent form), it is harmless."""
    if order.status == Order.Status.CONFIRMED:
        return "Confirmed. Payment and stock are being secured: this page follows along."
    return f"This order was confirmed already: it is {order.get_status_display().lower()} now."


def _visible_order(request: HttpRequest, order_id: UUID) -> Order:
    order = selectors.order_visible_to(user=request.user, order_id=order_id)
    if order is None:
        raise Http404("No such order.")
    return order


def _order_page(request: HttpRequest, order: Order, *, cancel_form: CancelForm | None = None) -> dict:
    timeline = selectors.order_timeline(order_id=order.id)
    payment = selectors.order_payment_status(order=order)
    stock = selectors.order_inventory_status(order=order)
    settled = selectors.order_is_settled(order=order)
    deliveries = Counter(d.status for entry in timeline for d in entry.deliveries)
    progress = ",".join(f"{status}={count}" for status, count in sorted(deliveries.items()))
    return {
        "order": order,
        "lines": order.lines.all(),
        "payment": payment,
        "payment_meaning": PaymentStatus.MEANINGS[payment],
        "stock": stock,
        "stock_meaning": InventoryStatus.MEANINGS[stock],
        "shipment": selectors.order_shipment(order=order),
        "timeline": timeline,
        "settled": settled,
        # The page follows the order while something may still change its status: not a draft (which waits
        # for its customer), not once shipped or cancelled. Follow-ups after that (a refund, a mail) show on reload.
        "following": not settled and not order.is_final,
        "version": f"{order.status}:{payment}:{stock}:{len(timeline)}:{progress}",
        "refresh_seconds": REFRESH_SECONDS,
        "may_confirm": order.is_confirmable and selectors.user_may_confirm(user=request.user, order=order),
        "may_cancel": order.is_cancellable and selectors.user_may_cancel(user=request.user, order=order),
        "cancel_form": cancel_form or CancelForm(),
    }
