from django.urls import path

from . import api

app_name = "inventory"
urlpatterns = [
    path("products/", api.ProductListApi.as_view(), name="product-list"),
    path("inventory/<str:sku>/", api.StockLevelApi.as_view(), name="stock-level"),
]
