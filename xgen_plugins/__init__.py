"""xgen's built-in plugins. Each sub-package is found through the "xgen" entry-point group in pyproject.toml
and imports only the public `xgen` API, exactly like a third-party plugin."""
