# Caps on routes and published ports (per container and per user) in the quota models.

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_totp_key_encrypted'),
    ]

    operations = [
        migrations.AddField(
            model_name='grouppolicy',
            name='max_container_ports',
            field=models.PositiveIntegerField(blank=True, help_text='Published ports of one container, besides SSH. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='grouppolicy',
            name='max_container_routes',
            field=models.PositiveIntegerField(blank=True, help_text='Routes of one container, besides its own name. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='grouppolicy',
            name='max_ports',
            field=models.PositiveIntegerField(blank=True, help_text='Published ports over all containers, besides each SSH port. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='grouppolicy',
            name='max_routes',
            field=models.PositiveIntegerField(blank=True, help_text="Routes over all containers, besides each one's own name. Empty: no say (the other rows decide).", null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='quotaoverride',
            name='max_container_ports',
            field=models.PositiveIntegerField(blank=True, help_text='Published ports of one container, besides SSH. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='quotaoverride',
            name='max_container_routes',
            field=models.PositiveIntegerField(blank=True, help_text='Routes of one container, besides its own name. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='quotaoverride',
            name='max_ports',
            field=models.PositiveIntegerField(blank=True, help_text='Published ports over all containers, besides each SSH port. Empty: no say (the other rows decide).', null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
        migrations.AddField(
            model_name='quotaoverride',
            name='max_routes',
            field=models.PositiveIntegerField(blank=True, help_text="Routes over all containers, besides each one's own name. Empty: no say (the other rows decide).", null=True, validators=[django.core.validators.MaxValueValidator(2147483647)]),
        ),
    ]
