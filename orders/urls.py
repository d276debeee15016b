"""The orders routes: the REST API (``api_patterns``, under /api/orders/) and the shop's pages (``page_patterns``)."""

from django.urls import path

from . import api, views

api_patterns = (
    [
        path("", api.OrderCollectionApi.as_view(), name="order-list"),
        path("<uuid:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
        path("<uuid:order_id>/confirm/", api.OrderConfirmApi.as_view(), name="order-confirm"),
        path("<uuid:order_id>/cancel/", api.OrderCancelApi.as_view(), name="order-cancel"),
        path("<uuid:order_id>/events/", api.OrderEventListApi.as_view(), name="order-events"),
    ],
    "orders-api",
)

page_patterns = (
    [
        path("", views.order_list, name="list"),
        path("new/", views.order_new, name="new"),
        path("<uuid:order_id>/", views.order_detail, name="detail"),
        path("<uuid:order_id>/live/", views.order_live, name="live"),
        path("<uuid:order_id>/confirm/", views.order_confirm, name="confirm"),
        path("<uuid:order_id>/cancel/", views.order_cancel, name="cancel"),
    ],
    "orders",
)
