"""agents: see DESIGN.md."""
