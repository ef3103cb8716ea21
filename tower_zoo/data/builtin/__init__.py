"""Built-in datasets: raw-file readers of public formats (``movielens``), the synthetic sets (``synthetic``,
``synthetic_scale``), datasets by name (``catalog``) and their shipped schemas (``schemas/*.yaml``, resolved
with a ``--data`` argument in ``resolve``)."""
