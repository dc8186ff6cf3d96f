"""An index on Job.finished_at: /metrics counts the jobs finished within a window."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("containers", "0009_deployment_name")]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["finished_at"], name="containers_job_finished_idx"),
        ),
    ]
