"""Model architectures and the factory that builds them from ``params.yaml``."""
