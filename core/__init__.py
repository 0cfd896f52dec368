"""Shared kernel: settings, clock, database, migrations, measurement catalog, translations.

Nothing here imports another Heimvakt component; every other package may import from here.
"""
