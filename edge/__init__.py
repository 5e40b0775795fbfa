"""maskipy.edge: the Raspberry Pi side of maskipy (camera, faces, classifier, outputs, counts)."""

__version__ = "0.1.0"
