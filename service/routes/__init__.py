"""The HTTP routes, one module per concern: health, models, classify."""
