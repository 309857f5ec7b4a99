"""Analytics for admins: the headline metrics from the ClickHouse store, as JSON."""
