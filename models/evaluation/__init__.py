"""Offline evaluation of recommenders: splits, ranking metrics, side-by-side reports."""
