"""pep_sidecars: see DESIGN.md."""
