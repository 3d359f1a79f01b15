"""gateway: see DESIGN.md."""
