from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root as an app: the project's own system checks, and its security receivers."""

    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import pre_save

        from . import checks, security  # noqa: F401  (register the project's system checks; the security log's receivers)
        from .api.auth import revoke_token_on_password_change

        pre_save.connect(revoke_token_on_password_change, sender=settings.AUTH_USER_MODEL, dispatch_uid="revoke-token")
