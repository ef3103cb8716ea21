"""The in-memory data path: ``InteractionData`` (``dataset``) and its splits (``splits``, ``exposure_split``,
``item_to_item``, ``categories``). Issue 22 replaces it by ``prepare`` + ``read``; it is kept apart so that it
can go as one folder, and nothing in ``schema``, ``prepare``, ``store`` or ``read`` imports it."""
