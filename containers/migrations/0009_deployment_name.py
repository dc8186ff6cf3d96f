"""A deployment's name (its container's hostname) as a column, and its TTL in days."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("containers", "0008_deployments")]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="name",
            # No deployment exists before the API that makes them (this release).
            field=models.CharField(db_index=True, default="", max_length=63),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="deployment",
            name="ttl_days",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="idle days before removal; each push starts them again",
                null=True,
            ),
        ),
    ]
