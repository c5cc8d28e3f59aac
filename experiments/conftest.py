"""The table builders' tests (run apart from the product's: `.venv/bin/python -m pytest experiments/`); this file's
folder on sys.path makes experiments/tables.py importable, as `table` in lib.sh does with PYTHONPATH."""
