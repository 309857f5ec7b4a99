"""Souk's streaming jobs (PyFlink): events from the outbox topics into live read models.

Each job module reads as source → transform → sink and runs unchanged on Flink's local
mini-cluster (`souk pipelines run NAME`) and on a real cluster (`flink run -py
pipelines/<job>.py` with ``SOUK_FLINK_URL``). ``pipelines.common`` holds what they share.
"""
