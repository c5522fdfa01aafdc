"""rtrun.actors (placeholder, filled in by later modules)."""
