"""Autosuggest (issue 10): prefix completion from past queries and product titles."""
