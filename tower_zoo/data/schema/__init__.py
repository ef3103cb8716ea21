"""What a dataset is: the schema file (``dataset_schema``, read strictly by ``schema_reading``; ``load_schema``
in ``loading``), raw ids in canonical form (``id_values``), the checked Parquet / CSV readers of its files
(``files``), the FeatureSpec that encodes raw values for the towers (``spec``) and the names of a batch's
reserved entries (``keys``)."""

from tower_zoo.data.schema.dataset_schema import (DatasetSchema, FeatureDef, LabelDef, SchemaError, SplitDef,
                                                  TableSpec, VocabOptions, parse_schema, read_schema_file)
from tower_zoo.data.schema.loading import load_schema
