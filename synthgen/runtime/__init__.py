"""Ray: the stream of seeds, the worker pool, the shard writer. The only layer that imports ray."""
