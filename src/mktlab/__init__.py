"""mktlab: reproducible research for marketing machine learning.

Importing the package is cheap on purpose: the launcher process (the `mktlab`
command and its sweep workers) never imports JAX; kernels and workers do.
"""

__version__ = "0.1.0"
