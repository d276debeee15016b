from django.urls import path

from . import api

app_name = "outbox"
urlpatterns = [
    path("dead-letters/", api.DeadLetterListApi.as_view(), name="dead-letter-list"),
    path("dead-letters/<int:delivery_id>/retry/", api.DeadLetterRetryApi.as_view(), name="dead-letter-retry"),
]
