"""A prepared directory on disk, shared by what writes it (``prepare``, the built-in materializations) and
what reads it (``read``): its manifest (``manifest``), the Parquet shard format (``shards``), its reader /
writer locks (``prepared_lock``) and its atomic, kill-safe replacement (``replace``)."""
