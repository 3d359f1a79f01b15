"""Council: the command line and the tooling around the PDP."""
