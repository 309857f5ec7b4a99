"""The transactional core: one folder per domain, plus the shared kernel."""
