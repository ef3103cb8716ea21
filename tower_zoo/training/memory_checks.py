"""A model whose embedding tables cannot fit in memory is refused before any variable is created.

``check_tables_fit(model, optimizer)`` sums rows x width x 4 bytes x (1 + optimizer slots) over every Keras
``Embedding`` layer of the model (their shapes are known at construction, before the model is built) and
raises one ValueError naming the widest table, the estimate and the limit (``tower_zoo.memory``), so
``--set embedding_dim=100000000`` fails in a second instead of in the allocator after the run has started.
"""

from __future__ import annotations

import tensorflow as tf

from tower_zoo.memory import OPTIMIZER_SLOTS, require_fits, table_bytes


def embedding_tables(model: tf.Module) -> list[tuple[str, int, int]]:
    """(layer name, rows, width) of every Keras Embedding layer inside ``model`` (built or not)."""
    tables = [module for module in model.submodules if isinstance(module, tf.keras.layers.Embedding)]
    return [(table.name, int(table.input_dim), int(table.output_dim)) for table in tables]


def check_tables_fit(model: tf.Module, optimizer: str = "adam") -> None:
    """ValueError when the tables of ``model`` and their ``optimizer`` slots exceed this machine's memory."""
    tables = embedding_tables(model)
    if not tables:
        return
    slots = OPTIMIZER_SLOTS.get(optimizer, max(OPTIMIZER_SLOTS.values()))
    total = sum(table_bytes(rows, width, slots) for _, rows, width in tables)
    name, rows, width = max(tables, key=lambda table: table[1] * table[2])
    config = getattr(model, "config", None)
    setting = f"embedding_dim={config.embedding_dim}" if hasattr(config, "embedding_dim") else "the model"
    require_fits(f"{getattr(model, 'model_name', type(model).__name__)} with {setting}: its embedding tables", total,
                 f"{len(tables)} table(s), the largest {name!r} {rows:,} rows x {width:,} wide, x 4 bytes x "
                 f"{1 + slots} with the {optimizer} optimizer's slots")
