"""rtrun.models (placeholder, filled in by later modules)."""
