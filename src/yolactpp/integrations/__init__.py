"""Optional integrations with other frameworks, each behind its own extra and imported only when used.

- :mod:`yolactpp.integrations.ray`: batch inference on Ray Data (``pip install 'yolactpp[ray]'``).
"""
