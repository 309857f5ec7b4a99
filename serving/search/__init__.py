"""Product search (GET /v1/search): one port, tantivy and Elasticsearch adapters, an indexer."""
