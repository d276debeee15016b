"""The admin's forms for the dead-letter queue."""

from django import forms


class DeadLetterGroupActionForm(forms.Form):
    """Retry or discard a group of dead letters: all of them, or the oldest ``limit``."""

    group = forms.RegexField(regex=r"^[0-9a-f]{12}$", error_messages={"invalid": "That is not a group's id."})
    action = forms.ChoiceField(choices=[("retry", "Retry"), ("discard", "Discard")])
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        error_messages={"invalid": "Give the limit as a whole number of 1 or more, or leave it empty for all."},
    )
