from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ProjectConfig(AppConfig):
    """The composition root as an app: the project's own system checks, and the staff groups ``migrate`` creates."""

    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the project's system checks)
            roles,
        )

        # Sent once per app with models (this one has none): once for auth, the groups' own app, is enough.
        auth = self.apps.get_app_config("auth")
        post_migrate.connect(roles.on_post_migrate, sender=auth, dispatch_uid="project.staff_groups")
