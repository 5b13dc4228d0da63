"""Test support for model plug-ins: `mktlab.testing.contract` holds the tests every model passes."""
