"""Souk's Feast feature repository: entities, fraud feature views and the store around them.

The definitions (``features.entities``, ``features.views``) are declarative, in Feast's own
style; ``features.store`` builds the ``RepoConfig`` from Souk's settings (online store: the
stack's Redis/Valkey; offline store: parquet files under ``SOUK_HOME/features/offline``) and
holds the thin helpers the fraud job and the fraud service call.
"""
