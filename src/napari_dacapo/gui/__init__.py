"""The napari face of napari-dacapo: dock widgets, the training worker, layer adapters.

Nothing here is imported by the core; importing this package imports no Qt by itself.
"""
