"""Spark for the lake's jobs: sessions (local or a cluster) and Delta reads/writes."""
