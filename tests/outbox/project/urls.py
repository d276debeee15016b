"""The outbox's admin and REST routes, where the shop mounts them (/admin/, /api/outbox/, /api/events/)."""

from django.contrib import admin
from django.urls import include, path

from outbox import urls as outbox_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/outbox/", include("outbox.urls", namespace="outbox-api")),
    path("api/events/", include(outbox_urls.event_patterns)),
]
