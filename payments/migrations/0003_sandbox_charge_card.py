"""The sandbox provider's ledger keeps a charge's card as its token's last four characters, never the token."""

from django.db import migrations, models


def keep_last_four(apps, schema_editor):
    SandboxCharge = apps.get_model("payments", "SandboxCharge")
    for charge in SandboxCharge.objects.using(schema_editor.connection.alias).only("pk", "token"):
        charge.card = f"…{charge.token[-4:]}" if len(charge.token) > 4 else "…"
        charge.save(update_fields=["card"])


class Migration(migrations.Migration):
    dependencies = [("payments", "0002_sandbox_provider_store")]

    operations = [
        migrations.AddField(
            model_name="sandboxcharge",
            name="card",
            field=models.CharField(blank=True, default="", max_length=10),
        ),
        migrations.RunPython(
            keep_last_four, migrations.RunPython.noop, hints={"model_name": "sandboxcharge"}, elidable=True
        ),
        migrations.RemoveField(model_name="sandboxcharge", name="token"),
    ]
