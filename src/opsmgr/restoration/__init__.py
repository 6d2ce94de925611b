"""Restoration Mode: detection, isolation and reconciliation of agents after the application
database is rolled back."""
