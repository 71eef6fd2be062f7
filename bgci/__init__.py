"""bgci: blue-green, zero-downtime deployment for Python web apps, as CI/CD pipeline steps."""

__version__ = "0.1.0"
