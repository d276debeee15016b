from django.urls import path

from . import api

app_name = "orders"
urlpatterns = [
    path("", api.OrderCollectionApi.as_view(), name="order-list"),
    path("<uuid:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
    path("<uuid:order_id>/confirm/", api.OrderConfirmApi.as_view(), name="order-confirm"),
    path("<uuid:order_id>/cancel/", api.OrderCancelApi.as_view(), name="order-cancel"),
    path("<uuid:order_id>/events/", api.OrderEventListApi.as_view(), name="order-events"),
]
