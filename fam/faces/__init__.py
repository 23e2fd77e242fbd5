"""Face detection, alignment and face models that run here."""
