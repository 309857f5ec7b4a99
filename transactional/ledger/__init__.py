"""The double-entry ledger: every money movement as balanced postings over accounts."""
