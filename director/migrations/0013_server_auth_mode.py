"""Servers keep the authentication mode of their first ad (issue 24: no cross-mode
takeover). Servers advertised before this migration get the mode their prefix shows: a
registration token (live or revoked) of the prefix means a token server; else a Pelican
registration of it means a Pelican server; else the next ad decides."""

from django.db import migrations, models


def guess_modes(apps, schema_editor):
    Server = apps.get_model("director", "Server")
    RegistrationToken = apps.get_model("director", "RegistrationToken")
    NamespaceRegistration = apps.get_model("director", "NamespaceRegistration")
    advertised = Server.objects.filter(source="advertised")
    token_prefixes = RegistrationToken.objects.values_list("registry_prefix", flat=True)
    advertised.filter(registry_prefix__in=token_prefixes).update(auth_mode="token")
    registered = NamespaceRegistration.objects.values_list("prefix", flat=True)
    advertised.filter(auth_mode="", registry_prefix__in=registered).update(auth_mode="pelican")


class Migration(migrations.Migration):
    dependencies = [
        ("director", "0012_registry_challenges"),
    ]

    operations = [
        migrations.AddField(
            model_name="server",
            name="auth_mode",
            field=models.CharField(
                blank=True,
                choices=[
                    ("token", "a registration token of this director"),
                    (
                        "pelican",
                        "an advertise token signed with a key registered for its prefix",
                    ),
                ],
                editable=False,
                help_text="How its ads are authenticated: the mode of its first ad, kept until "
                "the server is deleted; empty for servers defined in the admin.",
                max_length=10,
                verbose_name="advertised with",
            ),
        ),
        migrations.RunPython(guess_modes, migrations.RunPython.noop),
    ]
