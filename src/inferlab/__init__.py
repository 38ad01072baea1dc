"""inferlab: serve ML models over HTTP and gRPC, and measure, model and tune the service under load."""

__version__ = "0.1.0"

__all__ = ["__version__"]
