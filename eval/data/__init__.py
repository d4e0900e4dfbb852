"""Loaders for the shared external data sets (read in place) and the project's own data."""
