"""Souk: an open-source e-commerce platform built as a stream-processing data platform."""

__version__ = "0.1.0"
