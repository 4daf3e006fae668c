"""Helpers shared by test modules (importable as ``support``: pytest's ``pythonpath`` holds ``tests``)."""
