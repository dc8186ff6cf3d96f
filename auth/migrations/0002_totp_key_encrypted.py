"""TOTP keys encrypted at rest.

The authenticator apps move from django-otp's otp_totp table, whose `key` column held the
secret in plain text, to accounts.AuthenticatorDevice, whose key is Fernet ciphertext
(portal.crypto, FIELD_ENCRYPTION_KEYS). Existing rows are copied (the field encrypts on
save) and the old rows deleted, so no plain key stays in a table. Reversible while the
old table exists (the otp_totp app's migrations created it).
"""

import datetime

import auth.models
import django.db.models.deletion
import portal.crypto
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


OLD_TABLE = "otp_totp_totpdevice"
COLUMNS = (
    "user_id",
    "name",
    "confirmed",
    "key",
    "step",
    "t0",
    "digits",
    "tolerance",
    "drift",
    "last_t",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    "created_at",
    "last_used_at",
)


def _old_columns(schema_editor):
    """The old table's columns of COLUMNS, or None when there is no old table."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if OLD_TABLE not in connection.introspection.table_names(cursor):
            return None
        have = {c.name for c in connection.introspection.get_table_description(cursor, OLD_TABLE)}
    return [c for c in COLUMNS if c in have]


def encrypt_existing(apps, schema_editor):
    columns = _old_columns(schema_editor)
    if not columns:
        return
    device_model = apps.get_model("accounts", "AuthenticatorDevice")
    qn = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(OLD_TABLE)} ORDER BY {qn('id')}"
        )
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    for row in rows:
        for name, value in row.items():  # SQLite gives naive UTC datetimes to raw SQL
            if isinstance(value, datetime.datetime) and timezone.is_naive(value):
                row[name] = timezone.make_aware(value, datetime.timezone.utc)
        created_at = row.pop("created_at", None)
        device = device_model.objects.create(**row)  # EncryptedTextField encrypts the key
        if created_at is not None:  # auto_now_add would have replaced it
            device_model.objects.filter(pk=device.pk).update(created_at=created_at)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {qn(OLD_TABLE)}")


def decrypt_back(apps, schema_editor):
    device_model = apps.get_model("accounts", "AuthenticatorDevice")
    columns = _old_columns(schema_editor)
    if columns is None:
        if device_model.objects.exists():
            raise RuntimeError(
                f"cannot move TOTP devices back: there is no {OLD_TABLE} table "
                "(add django_otp.plugins.otp_totp to INSTALLED_APPS and migrate it first)"
            )
        return
    qn = schema_editor.quote_name
    placeholders = ", ".join(["%s"] * len(columns))
    insert = (
        f"INSERT INTO {qn(OLD_TABLE)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({placeholders})"
    )
    with schema_editor.connection.cursor() as cursor:
        for device in device_model.objects.order_by("pk"):  # the field decrypts the key
            cursor.execute(insert, [getattr(device, c) for c in columns])
    device_model.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuthenticatorDevice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human-readable name of this device.', max_length=64)),
                ('confirmed', models.BooleanField(default=True, help_text='Is this device ready for use?')),
                ('throttling_failure_timestamp', models.DateTimeField(blank=True, default=None, help_text='A timestamp of the last failed verification attempt. Null if last attempt succeeded.', null=True)),
                ('throttling_failure_count', models.PositiveIntegerField(default=0, help_text='Number of successive failed attempts.')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='The date and time when this device was initially created in the system.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, help_text='The most recent date and time this device was used.', null=True)),
                ('key', portal.crypto.EncryptedTextField(default=auth.models._new_totp_key, help_text='The hex-encoded secret (stored encrypted; never shown after enrolment).', validators=[auth.models._validate_totp_key])),
                ('step', models.PositiveSmallIntegerField(default=30, help_text='The time step in seconds.')),
                ('t0', models.BigIntegerField(default=0, help_text='The Unix time at which steps start.')),
                ('digits', models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)),
                ('tolerance', models.PositiveSmallIntegerField(default=1, help_text='Time steps in the past or future to allow.')),
                ('drift', models.SmallIntegerField(default=0, help_text="Steps the device's clock is off.")),
                ('last_t', models.BigIntegerField(default=-1, help_text='The step of the last code accepted (each code works once).')),
                ('user', models.ForeignKey(help_text='The user that this device belongs to.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'authenticator app (TOTP)',
                'verbose_name_plural': 'authenticator apps (TOTP)',
                'abstract': False,
            },
        ),
        migrations.RunPython(encrypt_existing, decrypt_back),
    ]
