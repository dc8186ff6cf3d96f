"""portalctl: Cluster Portal from the command line (it speaks only the REST API, /api/v1/)."""

__version__ = "0.1.0"
