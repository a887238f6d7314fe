"""Static verifier: CFG, abstract interpretation, verifier log."""
