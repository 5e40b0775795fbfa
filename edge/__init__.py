"""maskipy.edge: the Raspberry Pi side of maskipy (camera, faces, classifier, outputs, counts)."""

# The version of maskipy, the one place it is set: setup.cfg reads it, and so do --version and MQTT
# discovery (cli_runner.package_version).
__version__ = "0.1.0"
