"""Gradio apps and the `dsuite` command line."""
