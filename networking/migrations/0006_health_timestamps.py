"""When each node was last probed, and since when a site's gateway has had a change
waiting: the ages /readyz reports (issue #16, health and Prometheus)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("networking", "0005_route_access_default")]

    operations = [
        migrations.AddField(
            model_name="node",
            name="probed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="gatewaystate",
            name="pending_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
