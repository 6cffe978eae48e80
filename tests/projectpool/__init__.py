"""A pool whose lock and condition are made in another module of its own project."""
