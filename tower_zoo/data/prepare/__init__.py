"""``tower-zoo prepare``, the one streaming pass from a schema's files to a prepared directory: the scan
(``interaction_rows``), vocabularies and encoders (``vocab``, ``encoders``, ``side_tables``), the out-of-core
sort (``external_sort``), the split (``split_assign``), history sequences (``sequences``), the shards of each
part (``bucket_writer``) and the tables and statistics (``prepare_outputs``); ``run`` drives them."""

from tower_zoo.data.prepare.run import PrepareOptions, prepare
