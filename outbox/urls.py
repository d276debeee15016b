"""The outbox's REST routes: ``urlpatterns`` under /api/outbox/ (the dead-letter queue), ``event_patterns`` under
/api/events/ (the event log)."""

from django.urls import path

from . import api

app_name = "outbox"
urlpatterns = [
    path("dead-letters/", api.DeadLetterListApi.as_view(), name="dead-letter-list"),
    path("dead-letters/<int:delivery_id>/retry/", api.DeadLetterRetryApi.as_view(), name="dead-letter-retry"),
    path("dead-letters/<int:delivery_id>/discard/", api.DeadLetterDiscardApi.as_view(), name="dead-letter-discard"),
    path("dead-letter-groups/", api.DeadLetterGroupListApi.as_view(), name="dead-letter-group-list"),
    path(
        "dead-letter-groups/<str:group_id>/retry/",
        api.DeadLetterGroupRetryApi.as_view(),
        name="dead-letter-group-retry",
    ),
    path(
        "dead-letter-groups/<str:group_id>/discard/",
        api.DeadLetterGroupDiscardApi.as_view(),
        name="dead-letter-group-discard",
    ),
]

event_patterns = ([path("", api.EventListApi.as_view(), name="event-list")], "events-api")
