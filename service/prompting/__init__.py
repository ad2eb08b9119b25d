"""Prompting: chat templates (sandboxed Jinja2) and safe prompt tokenization."""
