"""The health community's management figures (styringsdata) and the deviations (avvik) to
follow up: one computation (figures.py, deviations.py) behind the API (routes.py), the
dashboard's figures page and the CSV downloads. docs/figures.md defines every figure."""
