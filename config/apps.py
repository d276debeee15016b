from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The composition root as an app: only so that the project's own system checks are registered."""

    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the project's system checks)
