"""What every streaming job shares: Flink environment, Kafka sources, Redis/Kafka sinks."""
