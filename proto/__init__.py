"""proto: see DESIGN.md."""
