"""The mail sweep: on beat's one schedule, routed to the notifications queue."""

from django.conf import settings

from notifications.tasks import send_due


def test_beat_runs_the_mail_sweep_on_the_notifications_queue():
    # given
    entry = settings.CELERY_BEAT_SCHEDULE["notifications-send-due"]
    # when beat sends the task as its entry says
    route = send_due.app.amqp.router.route(dict(entry.get("options", {})), entry["task"])
    # then
    assert entry["task"] == send_due.name == "notifications.send_due"
    assert entry["schedule"].run_every.total_seconds() == settings.NOTIFICATIONS_SWEEP_SECONDS
    assert route["queue"].name == "notifications"
    assert send_due.queue == "notifications"
