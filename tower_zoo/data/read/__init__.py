"""Reading prepared data: ``PreparedDataset`` (``prepared``: the directory, its parts, the item corpus), the
example sources the Trainer reads (``source``: arrays in memory; ``shard_source``: streamed shards), tf.data
pipelines over arrays (``pipeline``) and ``tower-zoo describe`` (``describe``)."""
