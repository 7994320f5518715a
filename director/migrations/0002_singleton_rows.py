from django.db import migrations


def create_singletons(apps, schema_editor):
    apps.get_model("director", "RegistryState").objects.get_or_create(pk=1)
    apps.get_model("director", "StatSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("director", "0001_initial")]

    operations = [migrations.RunPython(create_singletons, migrations.RunPython.noop)]
