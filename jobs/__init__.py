"""Batch side of Souk: the lake (bronze, silver, gold Delta tables) and the jobs that build it."""
