from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from inventory import views as inventory_views
from orders import urls as orders_urls
from outbox import urls as outbox_urls

from . import views
from .accounts import AdminSignInForm, PasswordResetView, SignInView
from .api.auth import TokenCreateApi

# Its sign-in form says when a locked-out client may try again (config/accounts.py).
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", inventory_views.catalogue, name="home"),  # the shop's front page: the catalogue
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Throttled sign-in and password reset (config/accounts.py); the rest of Django's account pages as they are.
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The page is the same for everyone: authenticating its request could only fail it, and did so while
    # rendering a 406 (a bad Authorization header with Accept: application/json was a 500).
    path(
        "api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", authentication_classes=[]), name="api-docs"
    ),
    path("api/auth/token/", TokenCreateApi.as_view(), name="api-token"),
    path("api/outbox/", include("outbox.urls", namespace="outbox-api")),
    path("api/events/", include(outbox_urls.event_patterns)),
    path("api/", include("inventory.urls", namespace="inventory-api")),  # products/, inventory/<sku>/
    path("api/orders/", include(orders_urls.api_patterns)),
    path("orders/", include(orders_urls.page_patterns)),
]

# Errors raised outside any view answer JSON under /api/, Django's pages elsewhere.
handler400 = "config.api.errors.bad_request"
handler404 = "config.api.errors.not_found"
handler500 = "config.api.errors.server_error"
