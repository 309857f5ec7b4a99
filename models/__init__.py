"""Batch ML: recommenders trained on the lake's gold tables, their evaluation and registry."""
